"""The typed settings machinery's former home; it lives in the top-level module `settings` now
(the ground floor every package may import). Re-exported so imports written against
`tuning.typed` keep working."""

from __future__ import annotations

from settings import (NAME_RULE, ConfigError, check_folder_name, first_difference, from_dict, merge,
                      parse_override, read_yaml, setting, to_dict)

__all__ = ["NAME_RULE", "ConfigError", "check_folder_name", "first_difference", "from_dict", "merge",
           "parse_override", "read_yaml", "setting", "to_dict"]
