"""Data layer: raw corpus files, TFDS builders, vocabulary, LM corpora and batching.

Public API::

    DataError                                   # every bad-input error (one-line message)
    resolve_raw_file(dataset, filename, data_dir) -> pathlib.Path
    read_text(path) -> str
    Vocab (build, encode, decode, save, load)
    Ptb, PtbChar, Wikitext2, TinyShakespeare, TextFile   # TFDS GeneratorBasedBuilders
    make_builder(name, data_dir=, tfds_dir=, path=, level=, split=) -> prepared builder
    LMCorpus, load_lm_corpus(data_config, workdir=None), encode_text_file(path, vocab, level)
    batchify(ids, batch_size) -> [B, n]; num_train_windows(batched, bptt);
    get_window(batched, i, bptt) -> (x, y); eval_windows(batched, bptt)
    JsbChorales, Nottingham, MuseData, PianoMidi       # polyphonic music TFDS builders
    make_music_builder(name, data_dir=, tfds_dir=); load_music(name, data_dir, tfds_dir)
      -> {split: [roll [T, 88] uint8]}

Padded batches of whole sequences (the music and classify tasks): ``rnnlm_jax.data.padded``.
"""

from rnnlm_jax.data.builders import (BUILDERS, Ptb, PtbChar, TextFile, TinyShakespeare,
                                     Wikitext2, make_builder, read_split_lines,
                                     resolve_tfds_dir)
from rnnlm_jax.data.errors import DataError
from rnnlm_jax.data.lm import (TOKENIZERS, LMCorpus, batchify, check_or_write_vocab,
                               encode_text_file, eval_windows, get_window, load_lm_corpus,
                               num_train_windows)
from rnnlm_jax.data.music import (MUSIC_BUILDERS, MUSIC_DATASETS, JsbChorales, MuseData,
                                  Nottingham, PianoMidi, load_music, make_music_builder)
from rnnlm_jax.data.sources import read_text, resolve_raw_file
from rnnlm_jax.data.vocab import EOS, UNK, Vocab

DATASETS = tuple(BUILDERS)

__all__ = [
    "BUILDERS", "DATASETS", "DataError", "EOS", "JsbChorales", "LMCorpus", "MUSIC_BUILDERS",
    "MUSIC_DATASETS", "MuseData", "Nottingham", "PianoMidi", "Ptb", "PtbChar", "TOKENIZERS",
    "TextFile", "TinyShakespeare", "UNK", "Vocab", "Wikitext2", "batchify",
    "check_or_write_vocab", "encode_text_file", "eval_windows",
    "get_window", "load_lm_corpus", "load_music", "make_builder", "make_music_builder",
    "num_train_windows", "read_split_lines", "read_text", "resolve_raw_file",
    "resolve_tfds_dir",
]
