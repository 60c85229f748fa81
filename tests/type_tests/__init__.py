"""Type tests: `typing.assert_type` pins what the checkers infer; never executed."""
