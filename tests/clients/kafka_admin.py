#!/usr/bin/env python3
"""The tests' Kafka administrator (confluent-kafka's AdminClient), over the
cluster's PLAINTEXT listener, whose principal is a super user.

Usage: kafka_admin.py BOOTSTRAP COMMAND ARGS...

Commands:
  user NAME PASSWORD        creates (or updates) a SCRAM-SHA-512 user
  acls PRINCIPAL JSON       replaces every ACL of PRINCIPAL (e.g. User:x)
                            with JSON: a list of [type, name, operation]
                            (type: topic, group or cluster; operation:
                            describe, read, write, create, alter, ...),
                            each a literal ALLOW for any host
  elect TOPIC               preferred leader election on every partition
                            of TOPIC; prints the partitions that moved
  leaders TOPIC             prints {"partition": [leader, [isr]]}
"""
import json
import sys
import time

from confluent_kafka import ElectionType, TopicPartition
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    ResourcePatternType,
    ResourceType,
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialUpsertion,
)

TYPES = {
    "topic": ResourceType.TOPIC,
    "group": ResourceType.GROUP,
    "cluster": ResourceType.BROKER,
}


def wait(futures):
    for f in futures.values() if isinstance(futures, dict) else futures:
        f.result(timeout=30)


def user(admin, name, password):
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, 4096)
    wait(admin.alter_user_scram_credentials(
        [UserScramCredentialUpsertion(name, info, password.encode())]))


def acls(admin, principal, wanted):
    every = AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, principal, None,
        AclOperation.ANY, AclPermissionType.ANY)
    wait(admin.delete_acls([every]))
    bindings = []
    for kind, name, operation in wanted:
        if kind == "cluster":
            name = "kafka-cluster"
        bindings.append(AclBinding(
            TYPES[kind], name, ResourcePatternType.LITERAL, principal, "*",
            AclOperation[operation.upper()], AclPermissionType.ALLOW))
    if bindings:
        wait(admin.create_acls(bindings))
    # The authorizer reads ACLs from the metadata log: wait until every
    # broker's copy shows exactly the wanted ones.
    deadline = time.time() + 30
    while time.time() < deadline:
        got = admin.describe_acls(every).result(timeout=30)
        if len(got) == len(bindings):
            # The other brokers apply the metadata log within its fetch
            # wait (500 ms): give them that before anyone relies on it.
            time.sleep(0.5)
            return
        time.sleep(0.2)
    sys.exit(f"ACLs of {principal} did not settle: {got}")


def elect(admin, topic):
    md = admin.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p) for p in md.topics[topic].partitions]
    moved = admin.elect_leaders(ElectionType.PREFERRED, parts).result(timeout=30)
    print(json.dumps(sorted(tp.partition for tp, err in moved.items() if err is None)))


def leaders(admin, topic):
    md = admin.list_topics(topic, timeout=10)
    print(json.dumps({str(p): [m.leader, list(m.isrs)]
                      for p, m in md.topics[topic].partitions.items()}))


def main():
    bootstrap, command, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
    if command == "user":
        user(admin, *args)
    elif command == "acls":
        acls(admin, args[0], json.loads(args[1]))
    elif command == "elect":
        elect(admin, args[0])
    elif command == "leaders":
        leaders(admin, args[0])
    else:
        sys.exit(f"unknown command {command}")


if __name__ == "__main__":
    main()
