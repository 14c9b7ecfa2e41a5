"""The hostile inputs of tests/test_hostile.py: name -> (content, or a writer of it; what the one error line must say).

Each is something a person could send by mistake or an attacker on purpose, and each
once ended in a traceback, a hang or memory exhaustion instead of one clear line.
"""
import io
import json
import sqlite3
import zipfile


def _config(**fields) -> bytes:
    return json.dumps(fields).encode()


def _layers(*layers) -> bytes:
    return _config(layers=list(layers))


FLATTEN = {"kind": "flatten"}

CONFIGS = {
    # -- not JSON a person could mean ----------------------------------------------------
    "not-utf8": (b"\xff\xfe{\x00}\x00", "config is not UTF-8 text"),
    "latin1-name": ('{"name": "caf\u00e9"}'.encode("latin-1"), "config is not UTF-8 text"),
    "deeply-nested": (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
    "nested-in-a-field": (b'{"name": ' + b"[" * 50_000 + b"]" * 50_000 + b"}", "nested too deeply"),
    "truncated": (b'{"layers": [{"kind": "conv2d"', "config is not valid JSON"),
    "empty-file": (b"", "config is not valid JSON"),
    "a-list-not-an-object": (b"[1, 2, 3]", "a config must be a JSON object, got a list"),
    "nan-learning-rate": (b'{"learning_rate": NaN}', "NaN is not a number a config may hold"),
    "infinite-momentum": (b'{"momentum": Infinity}', "Infinity is not a number a config may hold"),
    "huge-float": (b'{"learning_rate": 1e999}', "learning_rate must be a finite number"),
    "megabytes-of-json": (_config(name="x" * 2_000_000), "config is longer than the limit of 1,000,000 characters"),
    # -- a value of the wrong type ---------------------------------------------------------
    "list-where-text-belongs": (_config(name=["a", "b"]), "name must be text or null, got a list"),
    "object-where-text-belongs": (_config(optimizer={"adam": 1}), "optimizer must be text, got an object"),
    "text-where-a-number-belongs": (_config(learning_rate="0.1"), "learning_rate must be a number, got text"),
    "bool-where-a-whole-number-belongs": (_config(epochs=True), "epochs must be a whole number, got true"),
    "float-where-a-whole-number-belongs": (_config(batch_size=32.5), "batch_size must be a whole number"),
    "number-where-a-bool-belongs": (_config(nesterov=1), "nesterov must be true or false, got a number 1"),
    "number-where-a-list-belongs": (_config(augment=1), "augment must be a list, got a number 1"),
    "number-in-the-augmentation-list": (_config(augment=["flip", 3]), "augment item must be text, got a number 3"),
    "layers-an-object": (_config(layers={"kind": "flatten"}), "layers must be a list of layer objects"),
    "layer-a-number": (_layers(5), "layer 1: expected an object with a 'kind', got a number 5"),
    "layer-kind-a-list": (_layers({"kind": ["conv2d"]}), "layer 1: 'kind' must be a layer kind name"),
    "layer-param-an-object": (_layers({"kind": "conv2d", "filters": {"n": 8}}, FLATTEN),
                              "layer 1 ('conv2d'): filters must be a number or text, got an object"),
    "layer-param-bool": (_layers({"kind": "dense", "units": True}), "units must be a whole number of at least 1"),
    "backbone-a-list": (_config(backbone=["vgg16"]), "backbone must be an object or null, got a list"),
    "backbone-field-wrong-type": (_config(backbone={"name": "vgg16", "image_size": "64"}),
                                  "backbone: image_size must be a whole number, got text"),
    "unknown-setting": (_config(learning_rte=0.1), "unknown setting(s): learning_rte"),
    "terminal-escape-in-name": (_config(name="\x1b[2J\x1b]0;owned\x07"), "name must be printable text"),
    "very-long-name": (_config(name="n" * 10_000), "name is 10,000 characters long, over the limit of 200"),
    # -- sizes that pass the types but would exhaust memory --------------------------------
    "a-billion-filters": (_layers({"kind": "conv2d", "filters": 10**9}, FLATTEN),
                          "filters 1,000,000,000 is over the limit of 4,096"),
    "ten-thousand-layers": (_layers(*[{"kind": "dropout"}] * 10_000, FLATTEN),
                            "10,001 layers, more than the limit of 200"),
    "kernel-a-million": (_layers({"kind": "conv2d", "kernel_size": 10**6}, FLATTEN),
                         "kernel_size 1,000,000 is over the limit of 32"),
    "dense-a-million-units": (_layers(FLATTEN, {"kind": "dense", "units": 10**6}),
                              "units 1,000,000 is over the limit of 65,536"),
    "too-many-parameters": (_layers({"kind": "conv2d", "filters": 4096}, FLATTEN, {"kind": "dense", "units": 1024}),
                            "parameters, over the limit of 100,000,000"),
    "epochs-a-billion": (_config(layers=[FLATTEN], epochs=10**9), "epochs: 1,000,000,000 is over the limit of 10,000"),
    "seed-too-large": (_config(layers=[FLATTEN], seed=2**40), "seed: must be a whole number from 0 to 4,294,967,295"),
    "batch-size-a-million": (_config(layers=[FLATTEN], batch_size=10**6),
                             "batch_size: 1,000,000 is over the limit of 8,192"),
    "limit-beyond-the-data": (_config(layers=[FLATTEN], limit=10**7), "limit: 10,000,000 is over the limit of 50,000"),
}

# Search spaces (`search --space FILE`): the same parser, plus the space's own structure.
_BASE = {"layers": [{"kind": "conv2d", "filters": 8}, FLATTEN, {"kind": "dense", "units": 16}]}
SPACES = {
    "space-not-utf8": (b'{"params": [\xff]}', "search space is not UTF-8 text"),
    "space-nested-deeply": (b'{"params": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),
    "space-nan-choice": (b'{"base": "seed-part1", "params": [{"name": "lr", "field": "learning_rate", '
                         b'"choices": [NaN]}]}', "NaN is not a number a config may hold"),
    "space-params-an-object": (json.dumps({"params": {"name": "x"}}).encode(), "a list of 'params'"),
    "space-layer-a-list": (json.dumps({"base": _BASE, "params": [{"name": "x", "layer": [1], "choices": [8]}]}).encode(),
                           "search parameter 1: layer must be a whole number or null, got a list"),
    "space-choices-an-object": (json.dumps({"base": _BASE, "params": [{"name": "x", "layer": 1,
                                                                       "choices": {"a": 8}}]}).encode(),
                                "choices must be a list of at most 100 values"),
    "space-ten-thousand-choices": (json.dumps({"base": _BASE, "params": [{"name": "x", "layer": 1,
                                                                          "choices": list(range(10**4))}]}).encode(),
                                "choices must be a list of at most 100 values"),
    "space-base-with-a-billion-filters": (json.dumps({"base": {"layers": [{"kind": "conv2d", "filters": 10**9},
                                                                          FLATTEN]},
                                                      "params": [{"name": "x", "layer": 1, "choices": [8, 16]}]}
                                                     ).encode(), "filters 1,000,000,000 is over the limit of 4,096"),
    "space-log-range-infinite": (b'{"base": "seed-part1", "params": [{"name": "lr", "field": "learning_rate", '
                                 b'"log_range": [1e-4, 1e999]}]}', "must be a finite number"),
}

# Numeric flags that float()/int() accept or that make no sense: (arguments, the error line's words).
NUMERIC_FLAGS = [
    (["study", "--epochs-scale", "nan"], "argument --epochs-scale: 'nan' is not a finite number"),
    (["study", "--epochs-scale", "inf"], "argument --epochs-scale: 'inf' is not a finite number"),
    (["study", "--epochs-scale", "1e9"], "over the limit of 10,000"),
    (["study", "--epochs-scale", "-1"], "--epochs-scale must be above 0"),
    (["train", "--lr", "nan"], "argument --lr: 'nan' is not a finite number"),
    (["train", "--momentum=-inf"], "argument --momentum: '-inf' is not a finite number"),
    (["train", "--holdout-fraction", "NaN"], "argument --holdout-fraction: 'NaN' is not a finite number"),
    (["train", "--epochs", "1.5"], "argument --epochs: '1.5' is not a whole number"),
    (["train", "--seed", "-3"], "seed: must be a whole number from 0"),
    (["train", "--batch-size", "99999999"], "batch_size: 99,999,999 is over the limit of 8,192"),
    (["search", "--trials", "1e3"], "argument --trials: '1e3' is not a whole number"),
    (["predict", "--run", "1", "--top", "0", "x.png"], "--top must be at least 1"),
]


# -- stores: each writer makes `path` from a good store (`good`, a closed store file) -------
def foreign_sqlite(path, good) -> None:
    """Another application's database: its own tables, no schema version."""
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE contacts (name TEXT, phone TEXT)")
    conn.execute("INSERT INTO contacts VALUES ('Ada', '555-0100')")
    conn.commit()
    conn.close()


def foreign_sqlite_with_version(path, good) -> None:
    """Another application that numbers its schema too (user_version 3) but has no runs table."""
    foreign_sqlite(path, good)
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")
    conn.close()


def text_file(path, good) -> None:
    path.write_text("name,phone\nAda,555-0100\n")


def image_file(path, good) -> None:
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8)


def truncated_store(path, good) -> None:
    """A copy cut off after its first pages (a crash while copying it)."""
    path.write_bytes(good.read_bytes()[:3 * 4096])


def overwritten_pages(path, good) -> None:
    """A copy whose pages after the first are overwritten with other bytes (disk damage)."""
    data = bytearray(good.read_bytes())
    data[4096:] = bytes((i * 7 + 3) % 251 for i in range(len(data) - 4096))
    path.write_bytes(bytes(data))


def newer_store(path, good) -> None:
    path.write_bytes(good.read_bytes())
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()


def a_directory(path, good) -> None:
    path.mkdir()


STORES = {
    "foreign-sqlite": (foreign_sqlite, "another application's SQLite database (tables: contacts)"),
    "foreign-sqlite-with-version": (foreign_sqlite_with_version, "another application's SQLite database"),
    "text-file": (text_file, "is not a usable SQLite database (file is not a database)"),
    "image-file": (image_file, "is not a usable SQLite database (file is not a database)"),
    "truncated-store": (truncated_store, "malformed"),
    "overwritten-pages": (overwritten_pages, "malformed"),
    "newer-store": (newer_store, "schema version 99, newer than this code"),
    "a-directory": (a_directory, "cannot open"),
}
# Each store is given to a reading and a writing command.
STORE_COMMANDS = {"runs": ["runs"], "train": ["train", "--preset", "seed-part1", "--epochs", "1"]}


# -- model files: each writer turns a good .keras file (bytes) into a bad one at `path` ----------
def _rezip(good: bytes, path, replace: dict) -> None:
    """A copy of the .keras zip with members replaced (None: left out)."""
    with zipfile.ZipFile(io.BytesIO(good)) as source, zipfile.ZipFile(path, "w") as target:
        for member in source.namelist():
            data = replace.get(member, source.read(member))
            if data is not None:
                target.writestr(member, data)


def _edited_config(good: bytes, edit) -> bytes:
    with zipfile.ZipFile(io.BytesIO(good)) as source:
        config = json.loads(source.read("config.json"))
    edit(config)
    return json.dumps(config).encode()


def _dense_layer(config) -> dict:
    return next(layer for layer in config["config"]["layers"] if layer["class_name"] == "Dense")


MODELS = {
    "random-bytes": (lambda good, path: path.write_bytes(bytes(range(256)) * 20), "not a zip archive"),
    "truncated": (lambda good, path: path.write_bytes(good[:len(good) // 2]), "not a zip archive"),
    "empty": (lambda good, path: path.write_bytes(b""), "not a zip archive"),
    "a-directory": (lambda good, path: path.mkdir(), "the file is missing"),
    "config-not-json": (lambda good, path: _rezip(good, path, {"config.json": b"{not json"}), "JSONDecodeError"),
    "config-a-list": (lambda good, path: _rezip(good, path, {"config.json": b"[1, 2]"}), "TypeError"),
    "config-nested-deeply": (lambda good, path: _rezip(good, path, {"config.json": b"[" * 100_000 + b"]" * 100_000}),
                             "RecursionError"),
    "unknown-layer-class": (lambda good, path: _rezip(good, path, {"config.json": _edited_config(
        good, lambda c: _dense_layer(c).update(class_name="NoSuchLayer"))}), "ValueError"),
    "class-from-another-module": (lambda good, path: _rezip(good, path, {"config.json": _edited_config(
        good, lambda c: c.update(class_name="system", module="os"))}), "TypeError: Could not locate class"),
    "wrong-layer-setting": (lambda good, path: _rezip(good, path, {"config.json": _edited_config(
        good, lambda c: _dense_layer(c)["config"].update(units="many"))}), "could not be deserialized"),
    "weights-of-another-shape": (lambda good, path: _rezip(good, path, {"config.json": _edited_config(
        good, lambda c: _dense_layer(c)["config"].update(units=7))}), "damaged or not a model"),
    "lambda-layer": (lambda good, path: _rezip(good, path, {"config.json": _edited_config(
        good, lambda c: _dense_layer(c).update(class_name="Lambda", config={"function": "x"}))}),
        "damaged or not a model"),
    "no-weights": (lambda good, path: _rezip(good, path, {"model.weights.h5": None}), "Expected a model.weights"),
    "weights-not-hdf5": (lambda good, path: _rezip(good, path, {"model.weights.h5": b"not hdf5"}), "OSError"),
}
