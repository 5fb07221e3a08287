// The Thrift form of kvserver's network API (server.thrift_listen): the KV
// service of service.proto, every operation one unary method, built from
// structs that mirror the messages of kv.proto field for field. Each field
// has the number and name of its protobuf field, so one conversion
// (kvclient/thrift.go) serves every operation in both directions; a
// protobuf field without its Thrift twin fails that conversion's test.
//
// Types: protobuf's uint64 and uint32 travel as i64 and i32 holding the
// same bits; google.protobuf.Duration as i64 nanoseconds. Every struct
// field is optional: unset is protobuf's absent message.
//
// Outcomes: every response carries its Status (code OK on success) — the
// same numeric codes as kv.proto's StatusCode. No method throws; a
// transport or protocol failure (a frame over the size limit, bytes that
// are no Thrift message) closes the connection.
//
// Regenerate with `make thrift` (Debian bookworm's thrift-compiler 0.17.0);
// `make thrift-check` proves the committed code current.

namespace go thriftkv

// StatusCode: the values of kv.proto's StatusCode, with its meaning.
enum StatusCode {
  OK = 0,
  INVALID_ARGUMENT = 1,
  TOO_LARGE = 2,
  UNKNOWN_COLUMN_FAMILY = 3,
  CONFLICT = 4,
  TRANSACTION_TOO_OLD = 5,
  UNAVAILABLE = 6,
  TIMEOUT = 7,
  INTERNAL = 8,
  CANCELLED = 9,
  SESSION_EXPIRED = 10,
  PERMISSION_DENIED = 11,
  RESOURCE_EXHAUSTED = 12,
}

enum Consistency {
  LINEARIZABLE = 0,
  STALE = 1,
}

enum MutationType {
  MUTATION_UNSPECIFIED = 0,
  SET = 1,
  DELETE = 2,
  CLEAR_RANGE = 3,
}

struct Status {
  1: optional StatusCode code,
  2: optional string message,
}

struct RequestId {
  1: optional i64 client_id,
  2: optional i64 seq,
  3: optional i64 responded_to,
  // owner is replaced by the server with the caller's identity.
  4: optional string owner,
}

struct KeyValue {
  1: optional binary key,
  2: optional binary value,
}

struct KeyRange {
  1: optional string column_family,
  2: optional binary begin_key,
  3: optional binary end_key,
}

struct Mutation {
  1: optional MutationType type,
  2: optional string column_family,
  3: optional binary key,
  4: optional binary value,
  5: optional binary end_key,
}

struct AtomicCommit {
  1: optional list<Mutation> mutations,
  2: optional list<KeyRange> read_conflict_ranges,
  3: optional list<KeyRange> write_conflict_ranges,
  4: optional i64 read_version,
}

struct FaultInjection {
  1: optional double error_rate,
  2: optional i64 fail_after_writes,
  // added_latency in nanoseconds.
  3: optional i64 added_latency,
}

struct GetRequest {
  1: optional string column_family,
  2: optional binary key,
  3: optional Consistency consistency,
}

struct GetResponse {
  1: optional Status status,
  2: optional bool found,
  3: optional binary value,
}

struct PutRequest {
  1: optional string column_family,
  2: optional binary key,
  3: optional binary value,
  4: optional RequestId request_id,
}

struct PutResponse {
  1: optional Status status,
  2: optional i64 version,
}

struct DeleteRequest {
  1: optional string column_family,
  2: optional binary key,
  3: optional RequestId request_id,
}

struct DeleteResponse {
  1: optional Status status,
  2: optional i64 version,
}

struct ClearRangeRequest {
  1: optional string column_family,
  2: optional binary begin_key,
  3: optional binary end_key,
  4: optional RequestId request_id,
}

struct ClearRangeResponse {
  1: optional Status status,
  2: optional i64 version,
}

struct ListKeysRequest {
  1: optional string column_family,
  2: optional binary prefix,
  3: optional i32 limit,
  4: optional Consistency consistency,
}

struct ListKeysResponse {
  1: optional Status status,
  2: optional list<binary> keys,
}

struct GetRangeRequest {
  1: optional string column_family,
  2: optional binary begin_key,
  3: optional binary end_key,
  4: optional i32 limit,
  5: optional bool reverse,
  6: optional Consistency consistency,
}

struct GetRangeResponse {
  1: optional Status status,
  2: optional list<KeyValue> kvs,
}

struct AtomicCommitRequest {
  1: optional AtomicCommit commit,
  2: optional RequestId request_id,
}

struct AtomicCommitResponse {
  1: optional Status status,
  2: optional i64 version,
}

struct OpenSessionRequest {
  // owner is replaced by the server with the caller's identity.
  1: optional string owner,
}

struct OpenSessionResponse {
  1: optional Status status,
  2: optional i64 client_id,
}

struct GetReadVersionRequest {}

struct GetReadVersionResponse {
  1: optional Status status,
  2: optional i64 version,
}

struct SnapshotReadRequest {
  1: optional string column_family,
  2: optional binary key,
  3: optional i64 version,
}

struct SnapshotReadResponse {
  1: optional Status status,
  2: optional bool found,
  3: optional binary value,
}

struct SnapshotGetRangeRequest {
  1: optional string column_family,
  2: optional binary begin_key,
  3: optional binary end_key,
  4: optional i32 limit,
  5: optional bool reverse,
  6: optional i64 version,
}

struct SnapshotGetRangeResponse {
  1: optional Status status,
  2: optional list<KeyValue> kvs,
}

struct SetFaultInjectionRequest {
  1: optional FaultInjection faults,
  2: optional list<i32> replicas,
}

struct SetFaultInjectionResponse {
  1: optional Status status,
}

struct Member {
  1: optional i32 replica_id,
  2: optional i64 node_id,
  3: optional string raft_address,
  4: optional bool leader,
}

struct MemberListRequest {}

struct MemberListResponse {
  1: optional Status status,
  2: optional list<Member> members,
}

struct MemberAddRequest {
  1: optional i32 replica_id,
  2: optional string raft_address,
}

struct MemberAddResponse {
  1: optional Status status,
  2: optional Member member,
}

struct MemberRemoveRequest {
  1: optional i32 replica_id,
}

struct MemberRemoveResponse {
  1: optional Status status,
}

struct MemberReplaceRequest {
  1: optional i32 replica_id,
  2: optional i64 node_id,
  3: optional string raft_address,
}

struct MemberReplaceResponse {
  1: optional Status status,
  2: optional Member member,
}

struct MoveLeaderRequest {
  1: optional i32 replica_id,
}

struct MoveLeaderResponse {
  1: optional Status status,
  2: optional i64 term,
}

struct ColumnFamilyDigest {
  1: optional string column_family,
  2: optional binary sha256,
  3: optional i64 keys,
}

struct RangeDigest {
  1: optional binary sha256,
  2: optional i64 keys,
  3: optional binary middle,
  4: optional KeyValue first,
}

struct ReplicaStatus {
  1: optional i32 replica_id,
  2: optional bool running,
  3: optional bool is_leader,
  4: optional i32 leader_id,
  5: optional i64 term,
  6: optional i64 applied_index,
  7: optional list<ColumnFamilyDigest> digests,
  8: optional binary digest,
  9: optional string error,
  10: optional bool has_leader,
  11: optional i64 proposals_in_flight,
  12: optional bool installing_snapshot,
  13: optional i64 node_id,
  14: optional RangeDigest range_digest,
  15: optional ReplicaCounters counters,
  16: optional list<ColumnFamilySize> sizes,
  17: optional i64 raft_log_bytes,
}

struct ReplicaCounters {
  1: optional i64 proposals_dropped,
  2: optional i64 snapshots_sent,
  3: optional i64 snapshot_bytes_sent,
  4: optional double snapshot_send_seconds,
  5: optional i64 snapshots_received,
  6: optional i64 snapshot_bytes_received,
  7: optional double snapshot_receive_seconds,
}

struct ColumnFamilySize {
  1: optional string column_family,
  2: optional i64 sst_bytes,
  3: optional i64 live_data_bytes,
  4: optional i64 memtable_bytes,
}

struct StatusRequest {
  1: optional bool with_digests,
  2: optional KeyRange digest_range,
  3: optional bool with_sizes,
}

struct StatusResponse {
  1: optional Status status,
  2: optional list<ReplicaStatus> replicas,
  3: optional i32 leader_id,
  4: optional i64 term,
  5: optional string mode,
  6: optional bool has_leader,
}

struct BackupRequest {
  1: optional i64 backup_id,
  2: optional i32 replica_id,
  3: optional string column_family,
  4: optional binary after,
  5: optional bool abandon,
}

struct BackupResponse {
  1: optional Status status,
  2: optional i64 backup_id,
  3: optional i32 replica_id,
  4: optional i64 applied_index,
  5: optional list<string> column_families,
  6: optional string column_family,
  7: optional list<KeyValue> entries,
  8: optional string next_column_family,
  9: optional binary next_after,
  10: optional bool done,
  11: optional binary digest,
  12: optional list<ColumnFamilyDigest> digests,
}

// KV is the service of service.proto without its Batch stream: each call
// is answered on its connection in order (a client that wants calls in
// parallel opens more connections).
service KV {
  GetResponse Get(1: GetRequest req),
  PutResponse Put(1: PutRequest req),
  DeleteResponse Delete(1: DeleteRequest req),
  ClearRangeResponse ClearRange(1: ClearRangeRequest req),
  ListKeysResponse ListKeys(1: ListKeysRequest req),
  GetRangeResponse GetRange(1: GetRangeRequest req),
  AtomicCommitResponse AtomicCommit(1: AtomicCommitRequest req),
  GetReadVersionResponse GetReadVersion(1: GetReadVersionRequest req),
  SnapshotReadResponse SnapshotRead(1: SnapshotReadRequest req),
  SnapshotGetRangeResponse SnapshotGetRange(1: SnapshotGetRangeRequest req),
  SetFaultInjectionResponse SetFaultInjection(1: SetFaultInjectionRequest req),
  StatusResponse Status(1: StatusRequest req),
  OpenSessionResponse OpenSession(1: OpenSessionRequest req),
  MemberListResponse MemberList(1: MemberListRequest req),
  MemberAddResponse MemberAdd(1: MemberAddRequest req),
  MemberRemoveResponse MemberRemove(1: MemberRemoveRequest req),
  MemberReplaceResponse MemberReplace(1: MemberReplaceRequest req),
  MoveLeaderResponse MoveLeader(1: MoveLeaderRequest req),
  BackupResponse Backup(1: BackupRequest req),
}
