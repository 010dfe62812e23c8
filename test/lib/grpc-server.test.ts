import test from 'ava';
import { MAX_BEARER_TOKEN_BYTES, SERVER_LIMITS, serverOptions } from '../../src/lib/grpc-server.js';

test('every gRPC server gets idle, keepalive and metadata limits; extras are kept', (t) => {
  const o = serverOptions({ 'grpc.max_receive_message_length': 1024 });
  t.is(o['grpc.max_connection_idle_ms'], SERVER_LIMITS.idleMs);
  t.is(o['grpc.keepalive_time_ms'], SERVER_LIMITS.keepaliveMs);
  t.is(o['grpc.keepalive_timeout_ms'], SERVER_LIMITS.keepaliveTimeoutMs);
  t.true(SERVER_LIMITS.maxMetadataBytes > MAX_BEARER_TOKEN_BYTES, 'an oversized token reaches the handler and gets an answer');
  t.is(o['grpc.max_receive_message_length'], 1024);
});
