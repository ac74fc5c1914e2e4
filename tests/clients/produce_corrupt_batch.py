#!/usr/bin/env python3
"""Writes COUNT records to TOPIC/PARTITION as one record batch that claims
zstd compression but holds uncompressed records: a batch no client can
decode. Sent as a raw Produce v3 request (no Kafka client library would
write it). Usage: produce_corrupt.py HOST:PORT TOPIC PARTITION COUNT"""
import socket, struct, sys
from kafka.record.default_records import DefaultRecordBatchBuilder
from kafka.record.util import calc_crc32c

def batch(count):
    b = DefaultRecordBatchBuilder(magic=2, compression_type=0, is_transactional=False,
                                  producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                  batch_size=1 << 20)
    for i in range(count):
        b.append(i, timestamp=0, key=b"k%d" % i, value=b"x" * 100, headers=[])
    raw = bytearray(b.build())
    # attributes (int16) at offset 21; codec bits 0-2: 4 = zstd.
    attrs = struct.unpack_from(">h", raw, 21)[0]
    struct.pack_into(">h", raw, 21, (attrs & ~7) | 4)
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)

def string(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b

def main():
    host, port = sys.argv[1].rsplit(":", 1)
    topic, partition, count = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    records = batch(count)
    body = (struct.pack(">h", -1) + struct.pack(">hi", -1, 10000) + struct.pack(">i", 1)
            + string(topic) + struct.pack(">i", 1) + struct.pack(">i", partition)
            + struct.pack(">i", len(records)) + records)
    header = struct.pack(">hhi", 0, 3, 1) + string("corrupt-batch")
    msg = header + body
    s = socket.create_connection((host, int(port)), timeout=10)
    s.sendall(struct.pack(">i", len(msg)) + msg)
    size = struct.unpack(">i", s.recv(4))[0]
    resp = b""
    while len(resp) < size:
        resp += s.recv(size - len(resp))
    # correlation id, topics[1], name, partitions[1], partition, error code
    off = 4 + 4
    n = struct.unpack_from(">h", resp, off)[0]
    off += 2 + n + 4 + 4
    error = struct.unpack_from(">h", resp, off)[0]
    if error != 0:
        print(f"produce failed with error code {error}", file=sys.stderr)
        return 1
    print(f"wrote {count} undecodable records")
    return 0

sys.exit(main())
