// The wire types this client reads: a hand-kept subset of boardroom-protocol (protocol/src),
// until the typed-contract issue generates them from the OpenAPI document and the frame schema.

export type Uuid = string;

export interface User {
  id: Uuid;
  email: string;
  name: string;
}

export interface SessionAnswer {
  user: User;
}

export type OrgRole = "owner" | "admin" | "member";

export interface Organization {
  id: Uuid;
  name: string;
  role: OrgRole;
}

export interface OrgMember {
  user_id: Uuid;
  email: string;
  name: string;
}

export type BoardRole = "owner" | "editor" | "commenter" | "viewer";

export interface Board {
  id: Uuid;
  organization_id: Uuid;
  name: string;
  description: string;
}

/** A board with the caller's role, flattened: `GET /orgs/{org}/boards` entries and the
 * `POST /orgs/{org}/boards` answer. */
export interface BoardWithRole extends Board {
  role: BoardRole;
}

export type ColumnType =
  | "text"
  | "long_text"
  | "number"
  | "status"
  | "date"
  | "person"
  | "checkbox"
  | "dropdown"
  | "link";

export interface Column {
  id: Uuid;
  title: string;
  type: ColumnType;
  settings: { labels?: string[] };
  position: string;
}

export interface Group {
  id: Uuid;
  title: string;
  color: string | null;
  position: string;
}

export interface Item {
  id: Uuid;
  group_id: Uuid;
  name: string;
  values: Record<Uuid, unknown>;
  position: string;
  version: number;
  archived: boolean;
}

export interface Snapshot {
  board: Board;
  columns: Column[];
  groups: Group[];
  items: Item[];
  seq: number;
}

export interface Subscribed {
  seq: number;
  recovered: boolean;
  snapshot?: Snapshot;
}

export interface EventFrame {
  type: "event";
  board_id: Uuid;
  seq: number;
  kind: string;
  data: unknown;
}

export interface ReplyFrame {
  type: "reply";
  id: number | string | null;
  ok: boolean;
  data?: unknown;
  error?: { code: string; message: string };
}

export type ServerFrame =
  | { type: "hello"; protocol_version: number; heartbeat_secs: number }
  | ReplyFrame
  | EventFrame
  | { type: "presence"; board_id: Uuid }
  | { type: "unsubscribed"; board_id: Uuid; error?: { code: string; message: string } };

// ---------------------------------------------------------------------------------------------
// Admin and account pages (members.ts, api_keys.ts, webhooks.ts, audit.ts, account.ts): the
// protocol types they read, named as in protocol/src. Until wire.ts is generated, the interfaces
// below that share a name with one above extend it (declaration merging) with the fields these
// pages read.

/** A user's fields the account pages read (protocol `identity::User`). */
export interface User {
  email_verified: boolean;
  created_at: string;
}

/** `GET /me` (protocol `identity::Me`). */
export interface Me {
  user: User;
  session_id?: Uuid;
  superadmin?: boolean;
  deletion_scheduled_for?: string;
}

/** `GET /config` (protocol `client::ClientConfig`). */
export interface ClientConfig {
  google_sign_in: boolean;
  billing: boolean;
}

export interface OrgMember {
  role: OrgRole;
  joined_at: string;
}

export interface OrgMemberList {
  members: OrgMember[];
}

export interface Invitation {
  id: Uuid;
  organization_id: Uuid;
  organization_name: string;
  email: string;
  role: OrgRole;
  expires_at: string;
  invited_by: Uuid | null;
  created_at: string;
}

export interface InvitationList {
  invitations: Invitation[];
}

/** The 202 answer of `POST /orgs/{org}/members` for an address that is not a verified account. */
export interface InvitationSent {
  invitation: Invitation;
}

export type Scope =
  | "boards:read"
  | "boards:write"
  | "items:read"
  | "items:write"
  | "updates:read"
  | "updates:write";

export interface ApiKey {
  id: Uuid;
  organization_id: Uuid;
  user_id: Uuid;
  name: string;
  prefix: string;
  scopes: Scope[];
  rate_limit_per_minute: number;
  created_at: string;
  expires_at: string | null;
  revoked_at: string | null;
}

/** The key's fields, flattened, and the whole key, answered once. */
export interface CreatedApiKey extends ApiKey {
  key: string;
}

export interface ApiKeyList {
  api_keys: ApiKey[];
}

export interface Webhook {
  id: Uuid;
  board_id: Uuid;
  url: string;
  events: string[];
  enabled: boolean;
  consecutive_failures: number;
  previous_secret_expires_at: string | null;
  created_by: Uuid | null;
  created_by_key: Uuid | null;
  disabled_reason: string | null;
  created_at: string;
  updated_at: string;
}

/** The webhook's fields, flattened, and its signing secret, answered once. */
export interface CreatedWebhook extends Webhook {
  secret: string;
}

export interface WebhookList {
  webhooks: Webhook[];
}

export type DeliveryStatus = "pending" | "succeeded" | "failed";

export interface Delivery {
  id: Uuid;
  webhook_id: Uuid;
  seq: number;
  kind: string;
  status: DeliveryStatus;
  attempts: number;
  next_attempt_at: string | null;
  give_up_at: string;
  last_status_code: number | null;
  last_error: string | null;
  response_excerpt: string | null;
  created_at: string;
  updated_at: string;
}

export interface DeliveryList {
  deliveries: Delivery[];
}

export interface Redelivery {
  id: Uuid;
  status: DeliveryStatus;
}

export interface RotatedSecret {
  id: Uuid;
  secret: string;
  previous_secret_expires_at: string;
}

export interface AuditEntry {
  seq: number;
  id: Uuid;
  action: string;
  actor_id: Uuid | null;
  target: string | null;
  ip: string | null;
  user_agent: string | null;
  bypass: boolean;
  metadata: unknown;
  created_at: string;
}

export interface AuditLog {
  entries: AuditEntry[];
  next_cursor: number | null;
}

export type Plan = "free" | "pro" | "enterprise";

export type BillingStatus =
  | "none"
  | "trialing"
  | "active"
  | "past_due"
  | "unpaid"
  | "canceled"
  | "incomplete"
  | "incomplete_expired"
  | "paused";

export interface LimitUse {
  limit: number | null;
  used: number;
}

export interface PlanUsage {
  boards: LimitUse;
  members: LimitUse;
  api_keys: LimitUse;
  webhooks: LimitUse;
  storage_bytes: LimitUse;
}

/** `GET /orgs/{org}` adds the plan, its billing status and its limits with their use. */
export interface Organization {
  plan?: string;
  created_at?: string;
  billing_status?: BillingStatus;
  limits?: PlanUsage;
}

/** The answer of `POST /orgs/{org}/billing/checkout` and `…/portal`: where to send the person. */
export interface BillingRedirect {
  url: string;
}
