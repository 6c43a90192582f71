"""TensorBoard event files without TensorFlow: TFRecord framing (length, masked CRC-32C,
data, masked CRC-32C) around hand-encoded `Event` protocol buffers holding scalar
`Summary.Value`s (tag, simple_value), which TensorBoard reads as scalar plots."""

import os
import socket
import struct
import time

_CRC32C_TABLE = []
for _i in range(256):
    _c = _i
    for _ in range(8):
        _c = (_c >> 1) ^ 0x82F63B78 if _c & 1 else _c >> 1
    _CRC32C_TABLE.append(_c)


def crc32c(data):
    """CRC-32C (Castagnoli), the checksum TFRecord uses."""
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _CRC32C_TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data):
    crc = crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number, wire_type, payload):
    key = _varint((number << 3) | wire_type)
    if wire_type == 2:                              # length-delimited
        return key + _varint(len(payload)) + payload
    return key + payload


def encode_event(wall_time, step=0, file_version=None, scalars=None):
    """An `Event` message: wall_time (1, double), step (2, int64), file_version (3, string)
    or summary (5) with one Value per scalar: tag (1, string), simple_value (2, float)."""
    msg = _field(1, 1, struct.pack("<d", wall_time)) + _field(2, 0, _varint(int(step)))
    if file_version is not None:
        msg += _field(3, 2, file_version.encode())
    if scalars:
        values = b"".join(_field(1, 2, _field(1, 2, tag.encode()) +
                                 _field(2, 5, struct.pack("<f", float(value))))
                          for tag, value in scalars.items())
        msg += _field(5, 2, values)
    return msg


def record(data):
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + \
        struct.pack("<I", masked_crc(data))


class EventFileWriter:
    """Appends scalar events to `<folder>/events.out.tfevents.<time>.<host>`."""

    def __init__(self, folder):
        os.makedirs(folder, exist_ok=True)
        now = time.time()
        self.path = os.path.join(folder, f"events.out.tfevents.{int(now)}.{socket.gethostname()}")
        self._file = open(self.path, "ab")
        self._file.write(record(encode_event(now, file_version="brain.Event:2")))
        self._file.flush()

    def scalars(self, step, values):
        self._file.write(record(encode_event(time.time(), step, scalars=values)))
        self._file.flush()

    def close(self):
        self._file.close()
