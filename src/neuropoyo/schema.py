"""Names shared by the tokenizer, the batches and the model: token types and batch fields.

A leaf module: it imports nothing, so the model can read the token types without knowing the
tokenizer, and the tokenizer can name batch fields without knowing the model.
"""

SPIKE, START, END = 0, 1, 2  # input_token_type values
TOKEN_TYPES = (SPIKE, START, END)  # the types whose embedding depends on (unit, type) alone
VALUE = 3  # a sample of a unit's trace (calcium dF/F, a binned count): its embedding also takes the value

INPUT_KEYS = ("input_unit_index", "input_timestamps", "input_token_type", "input_values", "input_mask")
OUTPUT_KEYS = ("output_session_index", "output_timestamps", "output_decoder_index", "output_mask")
MODEL_KEYS = INPUT_KEYS + OUTPUT_KEYS  # the model's forward arguments
TARGET_KEYS = ("target_values", "target_weights", "output_sample_index")
QUERY_KEYS = OUTPUT_KEYS + TARGET_KEYS  # every per-query field, all with P rows
