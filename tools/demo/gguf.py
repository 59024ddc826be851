"""Minimal GGUF v3 reader and writer (standard library only).

Enough for the demo-model tools: read the tokenizer metadata of a vocabulary
file, write a model with F32 and Q8_0 tensors and read them back. frugal's own C++ reader validates
what this writes (tests load the result).
"""
import struct

GGUF_MAGIC = 0x46554747
# Metadata value types (GGUF specification).
UINT8, INT8, UINT16, INT16, UINT32, INT32, FLOAT32, BOOL, STRING, ARRAY, UINT64, INT64, FLOAT64 = range(13)
_SCALAR = {UINT8: "<B", INT8: "<b", UINT16: "<H", INT16: "<h", UINT32: "<I", INT32: "<i", FLOAT32: "<f",
           BOOL: "<?", UINT64: "<Q", INT64: "<q", FLOAT64: "<d"}
TENSOR_F32 = 0
TENSOR_Q8_0 = 8
# Bytes per element group: F32 one float; Q8_0 a block of 32 weights as an fp16 scale and 32 int8 values.
_BLOCK = {TENSOR_F32: (1, 4), TENSOR_Q8_0: (32, 34)}


def tensor_bytes(type_, shape):
    count = 1
    for d in shape:
        count *= d
    per, size = _BLOCK[type_]
    if count % per:
        raise ValueError(f"{count} elements do not fill blocks of {per}")
    return count // per * size


class Value:
    """A typed metadata value; `items_type` is set for arrays."""

    def __init__(self, type_, value, items_type=None):
        self.type, self.value, self.items_type = type_, value, items_type


class _Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def scalar(self, fmt):
        (v,) = struct.unpack_from(fmt, self.data, self.pos)
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.scalar("<Q")
        s = self.data[self.pos:self.pos + n].decode("utf-8", errors="surrogateescape")
        self.pos += n
        return s

    def value(self, type_):
        if type_ == STRING:
            return Value(STRING, self.string())
        if type_ == ARRAY:
            items_type = self.scalar("<I")
            n = self.scalar("<Q")
            return Value(ARRAY, [self.value(items_type).value for _ in range(n)], items_type)
        return Value(type_, self.scalar(_SCALAR[type_]))


def read_metadata(path):
    """Returns an ordered dict key -> Value of a GGUF file's metadata."""
    with open(path, "rb") as f:
        data = f.read()
    r = _Reader(data)
    if r.scalar("<I") != GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file")
    version = r.scalar("<I")
    if version not in (2, 3):
        raise ValueError(f"{path}: GGUF version {version} not supported")
    r.scalar("<Q")  # tensor count
    kv_count = r.scalar("<Q")
    metadata = {}
    for _ in range(kv_count):
        key = r.string()
        metadata[key] = r.value(r.scalar("<I"))
    return metadata


def _write_value(out, value):
    if value.type == STRING:
        b = value.value.encode("utf-8", errors="surrogateescape")
        out += struct.pack("<Q", len(b)) + b
    elif value.type == ARRAY:
        out += struct.pack("<IQ", value.items_type, len(value.value))
        for item in value.value:
            _write_value(out, Value(value.items_type, item))
    else:
        out += struct.pack(_SCALAR[value.type], value.value)


def write_model(path, metadata, tensors, alignment=32):
    """Writes GGUF v3. `metadata`: dict key -> Value; `tensors`: list of
    (name, shape in ggml order (row length first), data) or (name, shape,
    data, type): data is little-endian F32 unless type says TENSOR_Q8_0."""
    out = bytearray()
    out += struct.pack("<IIQQ", GGUF_MAGIC, 3, len(tensors), len(metadata))
    for key, value in metadata.items():
        _write_value(out, Value(STRING, key))
        out += struct.pack("<I", value.type)
        _write_value(out, value)
    offset = 0
    tensors = [t if len(t) == 4 else (*t, TENSOR_F32) for t in tensors]
    for name, shape, data, type_ in tensors:
        if len(data) != tensor_bytes(type_, shape):
            raise ValueError(f"tensor {name}: {len(data)} bytes for shape {shape} of type {type_}")
        _write_value(out, Value(STRING, name))
        out += struct.pack("<I", len(shape)) + b"".join(struct.pack("<Q", d) for d in shape)
        out += struct.pack("<IQ", type_, offset)
        offset += (len(data) + alignment - 1) // alignment * alignment
    out += b"\0" * ((-len(out)) % alignment)
    with open(path, "wb") as f:
        f.write(out)
        for _, _, data, _ in tensors:
            f.write(data)
            f.write(b"\0" * ((-len(data)) % alignment))


def read_tensors(path):
    """Returns {name: (shape in ggml order, type, bytes)} for a GGUF file whose
    tensors are F32 or Q8_0 (what write_model writes)."""
    with open(path, "rb") as f:
        data = f.read()
    r = _Reader(data)
    if r.scalar("<I") != GGUF_MAGIC:
        raise ValueError(f"{path}: not a GGUF file")
    r.scalar("<I")
    n_tensors, kv_count = r.scalar("<Q"), r.scalar("<Q")
    alignment = 32
    for _ in range(kv_count):
        key = r.string()
        value = r.value(r.scalar("<I"))
        if key == "general.alignment":
            alignment = value.value
    infos = []
    for _ in range(n_tensors):
        name = r.string()
        shape = [r.scalar("<Q") for _ in range(r.scalar("<I"))]
        type_, offset = r.scalar("<I"), r.scalar("<Q")
        if type_ not in _BLOCK:
            raise ValueError(f"{path}: tensor {name} has type {type_}; only F32 and Q8_0 are read")
        infos.append((name, shape, type_, offset))
    base = (r.pos + alignment - 1) // alignment * alignment
    out = {}
    for name, shape, type_, offset in infos:
        out[name] = (shape, type_, data[base + offset:base + offset + tensor_bytes(type_, shape)])
    return out
