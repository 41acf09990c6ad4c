"""vecdbctl recommend: repeated --positive/--negative options all count (argparse used to
keep only the last one), and several ids after one option still work."""
from vecdb_client.cli.parser import build_parser


def test_repeated_example_options_accumulate():
    args = build_parser().parse_args(["recommend", "docs", "--positive", "a", "--positive", "b",
                                      "c", "--negative", "x", "--negative", "y"])
    assert args.positive == ["a", "b", "c"]
    assert args.negative == ["x", "y"]


def test_one_option_with_several_ids():
    args = build_parser().parse_args(["recommend", "docs", "--positive", "a", "b"])
    assert args.positive == ["a", "b"] and args.negative is None
