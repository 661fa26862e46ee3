"""The error classes: every refusal of ours is a PlateauLensError."""


def test_a_sweep_refusal_is_one_of_ours():
    """SweepError is a PlateauLensError (it was a bare ValueError) and still a ValueError."""
    from plateau_lens.errors import PlateauLensError
    from plateau_lens.sweep import SweepError

    assert issubclass(SweepError, PlateauLensError) and issubclass(SweepError, ValueError)
