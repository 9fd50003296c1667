"""The one exception type for bad user input: the CLI prints it as one line and exits 2."""


class ConfigError(ValueError):
    """Bad input from the user. The message names every problem found."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(dict.fromkeys(problems))
        super().__init__("; ".join(self.problems))


def raise_if(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
