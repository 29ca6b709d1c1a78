// The wire types this client reads, as short names for the generated ones: `generated/api.ts`
// (from docs/openapi.json, the REST API) and `generated/frames.ts` (from
// docs/protocol.schema.json, the socket frames), both written by `npm run gen`. Nothing here is
// copied by hand: a type is an alias, or a narrowing of a generated union.

import type { components, operations, paths } from "./generated/api";
import type { components as frameComponents } from "./generated/frames";

export type { components, operations, paths };

/** The REST API's schemas by name (`components.schemas` of docs/openapi.json). */
export type Schemas = components["schemas"];
/** The socket frames' schemas by name (`$defs` of docs/protocol.schema.json). */
export type FrameSchemas = frameComponents["schemas"];

/** Ids are UUIDs, as strings (the schemas say `format: uuid`). */
export type Uuid = string;

export type User = Schemas["User"];
export type SessionAnswer = Schemas["SessionAnswer"];
/** `GET /me`. */
export type Me = Schemas["Me"];
/** `POST /ws/ticket`. */
export type WsTicket = Schemas["WsTicket"];
export type OrgRole = Schemas["OrgRole"];
export type Organization = Schemas["Organization"];
export type OrganizationList = Schemas["OrganizationList"];
export type OrgMember = Schemas["OrgMember"];
export type OrgMemberList = Schemas["OrgMemberList"];
export type BoardRole = Schemas["BoardRole"];
/** `GET /boards/{board}/members` entries, and that answer. */
export type BoardMember = Schemas["BoardMember"];
export type BoardMembers = Schemas["BoardMembers"];
export type Board = Schemas["Board"];
/** A board with the caller's role: `GET /orgs/{org}/boards` entries. */
export type BoardWithRole = Schemas["BoardWithRole"];
export type BoardList = Schemas["BoardList"];
/** `POST /orgs/{org}/boards`: the board, the caller's role, its first group. */
export type CreatedBoard = Schemas["CreatedBoard"];
export type ColumnType = Schemas["ColumnType"];
/** A column as the board view keeps it: a snapshot's column (a REST or event `Column` is one
 * too, with its `board_id`). */
export type Column = FrameSchemas["SnapshotColumn"];
export type Group = FrameSchemas["Group"];
/** An item as the board view keeps it: an event's item (a snapshot's item is one too, with its
 * `attachment_count`). */
export type Item = FrameSchemas["Item"];
export type Snapshot = FrameSchemas["Snapshot"];
export type Subscribed = FrameSchemas["Subscribed"];
export type ErrorBody = FrameSchemas["ErrorBody"];
export type ErrorCode = FrameSchemas["ErrorCode"];

/** A frame the server sends, told apart by `type`. */
export type ServerFrame = FrameSchemas["ServerFrame"];
export type HelloFrame = Extract<ServerFrame, { type: "hello" }>;
export type ReplyFrame = Extract<ServerFrame, { type: "reply" }>;
export type EventFrame = Extract<ServerFrame, { type: "event" }>;
export type PresenceFrame = Extract<ServerFrame, { type: "presence" }>;
export type UnsubscribedFrame = Extract<ServerFrame, { type: "unsubscribed" }>;
/** A frame a client sends (`id` and the message). */
export type ClientFrame = FrameSchemas["ClientFrame"];
export type ClientMessage = FrameSchemas["ClientMessage"];

/** The labels of a status or dropdown column: `settings.labels`, when it is a list of texts (the
 * schema leaves settings open, as they depend on the column's type). */
export function columnLabels(column: Pick<Column, "settings">): string[] {
  const { settings } = column;
  if (typeof settings !== "object" || settings === null || !("labels" in settings)) return [];
  const labels: unknown = settings.labels;
  return Array.isArray(labels) ? labels.filter((label): label is string => typeof label === "string") : [];
}

type Method = "get" | "put" | "post" | "delete" | "patch";

/** The JSON answer of a successful `method` on `path` (as docs/openapi.json spells it, such as
 * `"/api/v1/orgs/{org}/boards"`): `call<Answer<"/api/v1/orgs", "get">>("GET", "/orgs")`. */
export type Answer<P extends keyof paths, M extends Method> = paths[P][M] extends {
  responses: infer R;
}
  ? {
      [S in keyof R]: S extends 200 | 201 ? (R[S] extends { content: { "application/json": infer B } } ? B : never) : never;
    }[keyof R]
  : never;

// ----- the item panel (web-items) -----

/** A comment on an item, or a reply to one (`parent_id`). */
export type Update = Schemas["Update"];
/** `update.deleted` (its replies go with it). */
export type UpdateDeleted = Schemas["UpdateDeleted"];
/** `GET /boards/{board}/items/{item}/updates`. */
export type UpdateList = Schemas["UpdateList"];
/** A file on an item, or on one of its comments (`update_id`). */
export type Attachment = Schemas["Attachment"];
/** `attachment.deleted`. */
export type AttachmentDeleted = Schemas["AttachmentDeleted"];
/** `GET /boards/{board}/items/{item}/attachments`. */
export type AttachmentList = Schemas["AttachmentList"];

// --- The admin and account pages' types (members.ts, api_keys.ts, webhooks.ts, audit.ts,
// billing.ts, account.ts), aliases of the generated ones like those above. ---

/** `GET /config`: which optional features the server offers. */
export type ClientConfig = Schemas["ClientConfig"];
export type Invitation = Schemas["Invitation"];
export type InvitationList = Schemas["InvitationList"];
/** The `202` answer of `POST /orgs/{org}/members` for an address that is no verified account. */
export type InvitationSent = Schemas["InvitationSent"];
export type Scope = Schemas["Scope"];
export type ApiKey = Schemas["ApiKey"];
export type ApiKeyList = Schemas["ApiKeyList"];
/** The key's fields and the whole key, answered once. */
export type CreatedApiKey = Schemas["CreatedApiKey"];
export type Webhook = Schemas["Webhook"];
export type WebhookList = Schemas["WebhookList"];
/** The webhook's fields and its signing secret, answered once. */
export type CreatedWebhook = Schemas["CreatedWebhook"];
export type Delivery = Schemas["Delivery"];
export type DeliveryList = Schemas["DeliveryList"];
export type DeliveryStatus = Schemas["DeliveryStatus"];
export type Redelivery = Schemas["Redelivery"];
export type RotatedSecret = Schemas["RotatedSecret"];
export type AuditEntry = Schemas["AuditEntry"];
export type AuditLog = Schemas["AuditLog"];
export type Plan = Schemas["Plan"];
export type BillingStatus = Schemas["BillingStatus"];
export type LimitUse = Schemas["LimitUse"];
export type PlanUsage = Schemas["PlanUsage"];
/** Where checkout and the billing portal send the person. */
export type BillingRedirect = Schemas["BillingRedirect"];
