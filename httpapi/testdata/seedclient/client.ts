// A client of credgate typed the way the seed clients type its answers:
// seed 000's services family (snake_case, `expires_at?: string`) and seed
// 002's credentials family (an envelope whose error `details` is a string,
// credentialId a UUID). It casts answers to these types, as a typed client
// does; check.ts proves at run time that every answer really has them.

export interface Actor {
  id: string;
  name: string;
  email: string;
}

export interface Service {
  id: string;
  name: string;
  description: string;
  type: string;
  status: "active" | "inactive";
  base_url: string;
  api_version: string;
  tenant_id: string;
  metadata: Record<string, unknown>;
  created_at: string;
  updated_at: string;
  created_by: Actor;
  version: number;
}

export interface ServiceList {
  services: Service[];
  next_cursor: string;
}

export interface ServiceCredentials {
  service_id: string;
  credentials: Record<string, string>;
  metadata: {
    last_rotated?: string;
    expires_at?: string;
  };
  created_at: string;
  updated_at: string;
}

export interface ServiceError {
  error: {
    code: string;
    message: string;
    details: Record<string, unknown>;
  };
}

export type AuthType = "api_key" | "basic" | "bearer" | "oauth2_bearer" | "oauth2_client_credentials" | "custom";

export interface Credential {
  id: string;
  integrationId: string;
  credentialName: string;
  description: string;
  authType: AuthType;
  scopes: string[];
  tokenEndpoint: string;
  authorizationEndpoint: string;
  accessToken?: string;
  refreshToken?: string;
  apiKey?: string;
  apiSecret?: string;
  clientId?: string;
  clientSecret?: string;
  username?: string;
  password?: string;
  webhookSecret?: string;
  metadata: Record<string, unknown>;
  status: "active" | "inactive" | "expired" | "revoked";
  expiresAt?: string;
  createdAt: string;
  updatedAt: string;
  createdBy: Actor;
  lastAccessedAt?: string;
  tenant: { id: string; name: string };
  version: number;
}

export interface CredentialResponse {
  success: true;
  message: string;
  data: Credential;
  timestamp: string;
}

export interface CredentialErrorResponse {
  success: false;
  error: {
    code: string;
    message: string;
    details: string;
  };
  timestamp: string;
}

/** A UUID, as seed 002 types a credential id. */
export type UUID = string;

export class CredgateClient {
  constructor(private readonly baseURL: string, private readonly token: string) {}

  /** The answers of one call, as the typed client sees them. */
  readonly seen: { type: string; status: number; body: unknown }[] = [];

  private async call<T>(type: string, method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const init: RequestInit = {
      method,
      headers: { Authorization: `Bearer ${this.token}`, "Content-Type": "application/json" },
    };
    if (body !== undefined) {
      init.body = JSON.stringify(body);
    }
    const res = await fetch(this.baseURL + path, init);
    const text = await res.text();
    const parsed: unknown = text === "" ? undefined : JSON.parse(text);
    this.seen.push({ type, status: res.status, body: parsed });
    return { status: res.status, body: parsed as T };
  }

  createService(s: { name: string; type?: string; base_url?: string; metadata?: Record<string, unknown> }) {
    return this.call<Service>("Service", "POST", "/api/v1/services", s);
  }

  getService(id: string) {
    return this.call<Service>("Service", "GET", `/api/v1/services/${encodeURIComponent(id)}`);
  }

  getMissingService(id: string) {
    return this.call<ServiceError>("ServiceError", "GET", `/api/v1/services/${encodeURIComponent(id)}`);
  }

  listServices(limit = 50) {
    return this.call<ServiceList>("ServiceList", "GET", `/api/v1/services?limit=${limit}`);
  }

  setCredentials(id: string, credentials: Record<string, string>, expiresAt?: string) {
    const body = expiresAt === undefined ? { credentials } : { credentials, metadata: { expires_at: expiresAt } };
    return this.call<ServiceCredentials>("ServiceCredentials", "PUT", `/api/v1/services/${encodeURIComponent(id)}/credentials`, body);
  }

  getCredentials(id: string) {
    return this.call<ServiceCredentials>("ServiceCredentials", "GET", `/api/v1/services/${encodeURIComponent(id)}/credentials`);
  }

  getCredential(integrationId: string, credentialId?: UUID) {
    const q = credentialId === undefined ? "" : `?credentialId=${encodeURIComponent(credentialId)}`;
    return this.call<CredentialResponse>("CredentialResponse", "GET", `/api/v1/credentials/${encodeURIComponent(integrationId)}${q}`);
  }

  getCredentialError(integrationId: string, credentialId: string) {
    return this.call<CredentialErrorResponse>("CredentialErrorResponse", "GET", `/api/v1/credentials/${encodeURIComponent(integrationId)}?credentialId=${encodeURIComponent(credentialId)}`);
  }
}

/** Seed 000's expiration monitoring: warn 30 days ahead, urgent at 7. */
export function expiryLevel(c: ServiceCredentials, now: Date): "none" | "ok" | "warn" | "urgent" | "expired" {
  if (c.metadata.expires_at === undefined) {
    return "none";
  }
  const days = (Date.parse(c.metadata.expires_at) - now.getTime()) / 86_400_000;
  if (Number.isNaN(days)) {
    throw new Error(`expires_at is not a time: ${c.metadata.expires_at}`);
  }
  if (days <= 0) return "expired";
  if (days <= 7) return "urgent";
  if (days <= 30) return "warn";
  return "ok";
}
