/**
 * Names and addresses that deployment files, Envoy bootstraps and users rely on. Changing one is
 * a breaking change: deploy/ is tested against these values.
 */
export const DEFAULT_TRUST_DOMAIN = 'cluster.local';

/** SDS resource names, as Istio's agent serves them. */
export const SDS_WORKLOAD_SECRET = 'default';
export const SDS_ROOT_SECRET = 'ROOTCA';
/** meshid's own: the mesh bundle plus every partner CA of --partner-cas, for a gateway's client-certificate validation. */
export const SDS_PARTNERS_SECRET = 'partners';
export const SDS_FILE_CERT_PREFIX = 'file-cert:';
export const SDS_FILE_ROOT_PREFIX = 'file-root:';
/** A certificate and key the operator gave the agent by name (--named-cert NAME=...). */
export const SDS_NAMED_CERT_PREFIX = 'named:';

export const DEFAULT_SDS_SOCKET = '/var/run/meshid/sds.sock';
export const DEFAULT_AUTHZ_SOCKET = '/var/run/meshid/authz.sock';
export const DEFAULT_ADMIN_LISTEN = '127.0.0.1:15021';
/** istiod serves its CA on 15012. */
export const DEFAULT_CA_LISTEN = '127.0.0.1:15012';
/** The audience Istio's CA expects on projected service-account tokens. */
export const DEFAULT_TOKEN_AUDIENCE = 'istio-ca';
