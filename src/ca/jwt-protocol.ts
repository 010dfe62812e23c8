/** meshid.ca.v1.JwtSvidService from proto/jwt_svid.proto (in the build-time descriptor): JWT-SVIDs from `meshid ca`. */
import type * as grpc from '@grpc/grpc-js';
import type { FetchJWTBundleRequest, FetchJWTBundleRequest__Output } from '../generated/meshid/ca/v1/FetchJWTBundleRequest.js';
import type { FetchJWTBundleResponse, FetchJWTBundleResponse__Output } from '../generated/meshid/ca/v1/FetchJWTBundleResponse.js';
import type { MintJWTSVIDRequest, MintJWTSVIDRequest__Output } from '../generated/meshid/ca/v1/MintJWTSVIDRequest.js';
import type { MintJWTSVIDResponse, MintJWTSVIDResponse__Output } from '../generated/meshid/ca/v1/MintJWTSVIDResponse.js';
import { type TypedMethod, typedServiceDefinition } from '../lib/proto-services.js';

export type { FetchJWTBundleResponse, MintJWTSVIDRequest__Output, MintJWTSVIDResponse };

export const JWT_SVID_SERVICE = 'meshid.ca.v1.JwtSvidService';

export interface JwtSvidServiceDefinition extends grpc.ServiceDefinition {
  MintJWTSVID: TypedMethod<MintJWTSVIDRequest, MintJWTSVIDResponse, MintJWTSVIDRequest__Output, MintJWTSVIDResponse__Output>;
  FetchJWTBundle: TypedMethod<FetchJWTBundleRequest, FetchJWTBundleResponse, FetchJWTBundleRequest__Output, FetchJWTBundleResponse__Output>;
}

let service: JwtSvidServiceDefinition | undefined;

export function jwtSvidServiceDefinition(): JwtSvidServiceDefinition {
  service ??= typedServiceDefinition<JwtSvidServiceDefinition>(JWT_SVID_SERVICE, ['MintJWTSVID', 'FetchJWTBundle']);
  return service;
}
