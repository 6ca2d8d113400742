"""The error every bad scenario input raises: one message per problem, each naming the field."""


class ScenarioError(ValueError):
    """Invalid scenario input; `problems` lists one message per field."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
