"""Privacy: DP-SGD training with Opacus and a membership-inference audit of trained runs.

`privacy.dp` turns a recipe's `privacy` section into a step policy of the fine-tuning loop;
`privacy.membership` measures how well an attacker tells training members from non-members.
"""
