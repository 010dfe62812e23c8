/** meshid.ca.v1.JwtSvidService from proto/jwt_svid.proto: JWT-SVIDs from `meshid ca`. */
import type * as grpc from '@grpc/grpc-js';
import { packagePath } from '../lib/package-path.js';
import { loadProtoRoot, serviceDefinition } from '../lib/proto-services.js';

export const JWT_SVID_SERVICE = 'meshid.ca.v1.JwtSvidService';

export interface MintJwtSvidRequest {
  audience?: string[];
  /** int64: a decimal string on receipt. */
  ttl_seconds?: string | number;
}

export interface MintJwtSvidResponse {
  token?: string;
  spiffe_id?: string;
  expires_at?: string | number;
}

export interface FetchJwtBundleResponse {
  trust_domain?: string;
  jwks?: string;
}

export interface JwtSvidServiceDefinition extends grpc.ServiceDefinition {
  MintJWTSVID: grpc.MethodDefinition<MintJwtSvidRequest, MintJwtSvidResponse>;
  FetchJWTBundle: grpc.MethodDefinition<object, FetchJwtBundleResponse>;
}

const PROTO_FILE = packagePath('proto', 'jwt_svid.proto');
let service: JwtSvidServiceDefinition | undefined;

export function jwtSvidServiceDefinition(): JwtSvidServiceDefinition {
  if (service) return service;
  const def = serviceDefinition(loadProtoRoot([PROTO_FILE], []), JWT_SVID_SERVICE);
  for (const m of ['MintJWTSVID', 'FetchJWTBundle']) {
    if (def[m]?.path !== `/${JWT_SVID_SERVICE}/${m}`) throw new Error(`${PROTO_FILE} does not define /${JWT_SVID_SERVICE}/${m}`);
  }
  service = def as JwtSvidServiceDefinition;
  return service;
}
