"""The data foundation: reading, validating, splitting, PII redaction and augmentation of
labelled text. Curation tools (audit, active learning, labelling) live in `modelyard.curation`.

``load_data(recipe.data, seed)`` returns a DataBundle of train/dev/test splits with a
DataReport of every row read, removed and found suspicious; ``read_table`` reads one file.
"""

from modelyard.data.load import read_table
from modelyard.data.splits import DataBundle, Split, load_data
from modelyard.data.validate import DataReport

__all__ = ["DataBundle", "DataReport", "Split", "load_data", "read_table"]
