#!/usr/bin/env python3
"""Ask a broker what it answers to hostile and odd produce requests (raw frames, Produce v8):
lying record counts, unknown codecs, garbage payloads, several batches per partition, bad
record framing, timestamps out of range, and good batches of every codec for comparison.

This is how the answers in src/log/validator.rs and tests/hostile_produce.rs were taken from a
real Apache Kafka 4.4; run it against both brokers and compare:

    pip install crc32c lz4 zstandard python-snappy
    scripts/kafka.sh start 19092 /tmp/kafka-ref
    scripts/probe-produce.py 127.0.0.1 19092 probe      # Kafka
    scripts/probe-produce.py 127.0.0.1 9092 probe       # shardlog
    scripts/probe-produce.py 127.0.0.1 9092 probe codec5 two_batches   # some cases only

The topic is created through a Metadata request (auto-creation must be on).
"""
import socket, struct, sys, time, gzip, os
import crc32c, lz4.frame, zstandard, snappy

HOST, PORT = sys.argv[1], int(sys.argv[2])
TOPIC = sys.argv[3] if len(sys.argv) > 3 else "probe"


def varint(v):
    v = (v << 1) ^ (v >> 63)
    v &= (1 << 64) - 1
    out = b""
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def record(offset_delta, ts_delta=0, key=b"k", value=b"v", headers=(), attrs=0, raw_len=None, hcount=None):
    body = bytes([attrs]) + varint(ts_delta) + varint(offset_delta)
    body += varint(-1) if key is None else varint(len(key)) + key
    body += varint(-1) if value is None else varint(len(value)) + value
    body += varint(len(headers) if hcount is None else hcount)
    for hk, hv in headers:
        body += varint(len(hk)) + hk + varint(len(hv)) + hv
    return varint(len(body) if raw_len is None else raw_len) + body


def batch(records_bytes, count, last_delta=None, codec=0, base_ts=None, max_ts=None, attrs_extra=0,
          pid=-1, epoch=-1, seq=-1, magic=2):
    now = int(time.time() * 1000)
    base_ts = now if base_ts is None else base_ts
    max_ts = base_ts if max_ts is None else max_ts
    last_delta = count - 1 if last_delta is None else last_delta
    payload = records_bytes
    if codec == 1:
        payload = gzip.compress(records_bytes)
    elif codec == 2:
        payload = snappy.compress(records_bytes)
    elif codec == 3:
        payload = lz4.frame.compress(records_bytes)
    elif codec == 4:
        payload = zstandard.ZstdCompressor().compress(records_bytes)
    attrs = (codec & 7) | attrs_extra
    after_crc = struct.pack(">hiqqqhii", attrs, last_delta, base_ts, max_ts, pid, epoch, seq, count) + payload
    crc = crc32c.crc32c(after_crc)
    body = struct.pack(">ibI", 0, magic, crc) + after_crc  # epoch, magic, crc
    return struct.pack(">qi", 0, len(body)) + body


def produce(records, acks=-1, topic=TOPIC, partition=0, version=8, raw_parts=None):
    t = topic.encode()
    parts = raw_parts if raw_parts is not None else [(partition, records)]
    body = struct.pack(">hhi", -1, acks, 10000) + struct.pack(">i", 1) + struct.pack(">h", len(t)) + t
    body += struct.pack(">i", len(parts))
    for p, r in parts:
        body += struct.pack(">ii", p, len(r)) + r
    header = struct.pack(">hhih", 0, version, 42, 5) + b"probe"
    frame = header + body
    s = socket.create_connection((HOST, PORT))
    s.settimeout(20)
    s.sendall(struct.pack(">i", len(frame)) + frame)
    if acks == 0:
        return None
    try:
        n = struct.unpack(">i", recvn(s, 4))[0]
    except Exception as e:
        return f"closed/timeout: {e!r}"
    data = recvn(s, n)
    pos = 4  # corr id
    (ntopics,) = struct.unpack_from(">i", data, pos); pos += 4
    out = []
    for _ in range(ntopics):
        (ln,) = struct.unpack_from(">h", data, pos); pos += 2 + ln
        (np_,) = struct.unpack_from(">i", data, pos); pos += 4
        for _ in range(np_):
            idx, err, base, lat, lso = struct.unpack_from(">ihqqq", data, pos); pos += 30
            (nre,) = struct.unpack_from(">i", data, pos); pos += 4
            rerrs = []
            for _ in range(max(nre, 0)):
                (bi,) = struct.unpack_from(">i", data, pos); pos += 4
                (ml,) = struct.unpack_from(">h", data, pos); pos += 2
                m = data[pos:pos + ml].decode() if ml >= 0 else None; pos += max(ml, 0)
                rerrs.append((bi, m))
            (ml,) = struct.unpack_from(">h", data, pos); pos += 2
            msg = data[pos:pos + ml].decode() if ml >= 0 else None; pos += max(ml, 0)
            out.append(dict(p=idx, err=err, base=base, lso=lso, rerrs=rerrs, msg=msg))
    return out


def metadata_create(topic):
    t = topic.encode()
    body = struct.pack(">i", 1) + struct.pack(">h", len(t)) + t + b"\x01"
    header = struct.pack(">hhih", 3, 4, 7, 5) + b"probe"
    frame = header + body
    s = socket.create_connection((HOST, PORT))
    s.sendall(struct.pack(">i", len(frame)) + frame)
    n = struct.unpack(">i", recvn(s, 4))[0]
    recvn(s, n)


def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed")
        b += c
    return b


def recs(n, **kw):
    return b"".join(record(i, **kw) for i in range(n))


now = int(time.time() * 1000)
CASES = {
    "good": lambda: batch(recs(3), 3),
    "gzip_count_2^31-1": lambda: batch(recs(1), 2**31 - 1, codec=1),
    "codec5": lambda: batch(recs(1), 1, codec=5),
    "codec6": lambda: batch(recs(1), 1, codec=6),
    "codec7": lambda: batch(recs(1), 1, codec=7),
    "gzip_garbage_payload": lambda: batch(os.urandom(64), 1, codec=1),
    "gzip_not_gzip": lambda: batch(recs(1), 1, codec=0)[:0] or bytes_codec_raw(1, b"\x00garbage-not-gzip"),
    "lz4_garbage": lambda: bytes_codec_raw(3, os.urandom(40)),
    "zstd_garbage": lambda: bytes_codec_raw(4, os.urandom(40)),
    "snappy_garbage": lambda: bytes_codec_raw(2, os.urandom(40)),
    "two_batches": lambda: batch(recs(1), 1) + batch(recs(1), 1),
    "count_less_than_records": lambda: batch(recs(3), 2),
    "count_more_than_records": lambda: batch(recs(2), 3),
    "gzip_count_more": lambda: batch(recs(2), 3, codec=1),
    "gzip_count_less": lambda: batch(recs(3), 2, codec=1),
    "offset_delta_gap": lambda: batch(record(0) + record(2), 2),
    "offset_delta_gap_gzip": lambda: batch(record(0) + record(2), 2, codec=1),
    "last_delta_mismatch": lambda: batch(recs(2), 2, last_delta=5),
    "zero_count": lambda: batch(b"", 0, last_delta=0),
    "control_batch": lambda: batch(recs(1), 1, attrs_extra=0x20),
    "record_len_too_long": lambda: batch(record(0, raw_len=50), 1),
    "record_len_too_short": lambda: batch(record(0, raw_len=3) + b"\x00" * 3, 1),
    "neg_header_count": lambda: batch(record(0, hcount=-1), 1),
    "neg_key_len_-5": lambda: batch(varint(7) + b"\x00\x00\x00" + varint(-5) + b"\x00\x00\x00", 1),
    "varint_too_long": lambda: batch(b"\xff\xff\xff\xff\xff\xff\x01" + b"\x00" * 10, 1),
    "ts_future_2h": lambda: batch(recs(1), 1, base_ts=now + 2 * 3600 * 1000),
    "ts_past_10y": lambda: batch(recs(1), 1, base_ts=now - 10 * 365 * 86400 * 1000),
    "ts_minus_one": lambda: batch(recs(1), 1, base_ts=-1, max_ts=-1),
    "ts_minus_5": lambda: batch(recs(1), 1, base_ts=-5, max_ts=-5),
    "max_ts_lies": lambda: batch(recs(2, ts_delta=0), 2, max_ts=now + 1000),
    "log_append_time_bit": lambda: batch(recs(1), 1, attrs_extra=0x08),
    "magic1": lambda: batch(recs(1), 1, magic=1),
    "pid_no_seq": lambda: batch(recs(1), 1, pid=5, epoch=0, seq=-1),
    "transactional_no_pid": lambda: batch(recs(1), 1, attrs_extra=0x10),
    "gzip_trailing_bytes": lambda: bytes_codec_raw(1, gzip.compress(recs(1)) + b"trailing", count=1),
    "gzip_good": lambda: batch(recs(3), 3, codec=1),
    "snappy_good": lambda: batch(recs(3), 3, codec=2),
    "snappy_xerial_good": lambda: bytes_codec_raw(2, xerial(recs(3)), count=3),
    "lz4_good": lambda: batch(recs(3), 3, codec=3),
    "zstd_good": lambda: batch(recs(3), 3, codec=4),
    "null_value_and_key": lambda: batch(record(0, key=None, value=None), 1),
    "unused_attr_bits_record": lambda: batch(record(0, attrs=0x7f), 1),
    "batch_attr_high_bits": lambda: batch(recs(1), 1, attrs_extra=0x4000),
    "delete_horizon_bit": lambda: batch(recs(1), 1, attrs_extra=0x40),
    "neg_ts_delta": lambda: batch(record(0, ts_delta=-10) + record(1), 2),
}


def xerial(data):
    out = b"\x82SNAPPY\x00" + struct.pack(">ii", 1, 1)
    for i in range(0, len(data), 32768):
        c = snappy.compress(data[i:i + 32768])
        out += struct.pack(">i", len(c)) + c
    return out


def bytes_codec_raw(codec, payload, count=1):
    after_crc = struct.pack(">hiqqqhii", codec, count - 1, now, now, -1, -1, -1, count) + payload
    body = struct.pack(">ibI", 0, 2, crc32c.crc32c(after_crc)) + after_crc
    return struct.pack(">qi", 0, len(body)) + body


if __name__ == "__main__":
    names = sys.argv[4:] or list(CASES)
    metadata_create(TOPIC)
    time.sleep(2)
    for name in names:
        r = produce(CASES[name]())
        print(f"{name:28} {r}")
    print("partitioned two parts same index:",
          produce(None, raw_parts=[(0, CASES['good']()), (0, CASES['good']())]))
