"""Vocabulary: fixed special ids, frequency cut-offs, encode/decode, JSON round trip, clear errors."""

import pytest
import torch

from rnnkit.data.vocab import (
    BOS_ID, EOS_ID, PAD_ID, SPECIALS, UNK_ID, Vocabulary, pad_batch,
)


def test_special_tokens_have_fixed_ids():
    vocab = Vocabulary(["x", "y"])
    assert (PAD_ID, UNK_ID, BOS_ID, EOS_ID) == (0, 1, 2, 3)
    assert vocab.tokens[:4] == list(SPECIALS) and len(vocab) == 6
    assert [vocab.token_to_id(t) for t in SPECIALS] == [0, 1, 2, 3]


def test_build_orders_by_frequency_then_code_point_and_cuts():
    texts = ["the cat and the dog", "the dog and a bird"]
    vocab = Vocabulary.build(texts, level="word")
    assert vocab.tokens[4:] == ["the", "and", "dog", "a", "bird", "cat"]  # 3, 2, 2, then 1s alphabetically
    assert Vocabulary.build(texts, level="word", min_freq=2).tokens[4:] == ["the", "and", "dog"]
    assert Vocabulary.build(texts, level="word", max_size=2).tokens[4:] == ["the", "and"]
    assert Vocabulary.build(reversed(texts), level="word") == vocab  # order of texts does not matter


def test_char_and_word_encode_decode():
    chars = Vocabulary.build(["hello world"])
    ids = chars.encode("hello", add_bos=True, add_eos=True)
    assert ids[0] == BOS_ID and ids[-1] == EOS_ID and len(ids) == 7
    assert chars.decode(ids) == "hello"
    assert chars.encode("hex") == [chars.token_to_id("h"), chars.token_to_id("e"), UNK_ID]
    assert chars.decode(ids, skip_special=False, stop_at_eos=False) == "<bos>hello<eos>"
    assert chars.decode(torch.tensor(ids + [chars.token_to_id("h")])) == "hello"  # stops at EOS
    words = Vocabulary.build(["a b  c"], level="word")
    assert words.decode(words.encode("  c   a b ")) == "c a b"
    assert words.decode(words.encode("a z")) == "a <unk>"


def test_json_and_file_round_trip(tmp_path):
    vocab = Vocabulary.build(["ünïcode ☃ text"], level="char")
    assert Vocabulary.from_json(vocab.to_json()) == vocab
    vocab.save(tmp_path / "v.json")
    loaded = Vocabulary.load(tmp_path / "v.json")
    assert loaded == vocab and loaded.encode("☃") == vocab.encode("☃") != [UNK_ID]
    assert Vocabulary.from_json(Vocabulary(["a"], level="word").to_json()).level == "word"


def test_errors_are_clear(tmp_path):
    with pytest.raises(ValueError, match="token 'a' is a duplicate"):
        Vocabulary(["a", "a"])
    with pytest.raises(ValueError, match="token '<pad>' is a special token"):
        Vocabulary(["<pad>"])
    with pytest.raises(ValueError, match="single characters, got 'ab'; use level='word'"):
        Vocabulary(["ab"])
    with pytest.raises(ValueError, match="unknown level 'byte'"):
        Vocabulary.build(["x"], level="byte")
    with pytest.raises(ValueError, match="min_freq must be an integer >= 1, got 0"):
        Vocabulary.build(["x"], min_freq=0)
    with pytest.raises(TypeError, match="wrap it in a list"):
        Vocabulary.build("text")
    with pytest.raises(IndexError, match="token id 9 is out of range for a vocabulary of 5 tokens"):
        Vocabulary(["a"]).id_to_token(9)
    with pytest.raises(ValueError, match="not valid JSON"):
        Vocabulary.from_json("{")
    with pytest.raises(ValueError, match="list starting with the special tokens"):
        Vocabulary.from_json('{"format": "rnnkit-vocabulary", "level": "char", "tokens": ["a"]}')
    with pytest.raises(FileNotFoundError, match="missing.json' does not exist"):
        Vocabulary.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="cannot read vocabulary .*bad.json.*not an rnnkit vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


def test_pad_batch():
    ids, lengths = pad_batch([[5], [6, 7, 8], [9, 10]])
    assert ids.tolist() == [[5, 0, 0], [6, 7, 8], [9, 10, 0]] and lengths.tolist() == [1, 3, 2]
