-- Billing with Stripe. An organization's plan (already a column) now moves with its Stripe
-- subscription; billing_status is that subscription's status ('none' without one).
-- billing_event_at is the `created` time (Unix seconds) of the newest Stripe event applied to
-- the organization, so an event older than the state already applied is recognized as stale.
--
-- stripe_events records every verified event id that reached an organization in the same
-- transaction as its effect: a redelivered or concurrently duplicated event finds its id taken
-- and applies nothing.

ALTER TABLE organizations ADD COLUMN billing_status text NOT NULL DEFAULT 'none';
ALTER TABLE organizations ADD COLUMN stripe_customer_id text;
ALTER TABLE organizations ADD COLUMN stripe_subscription_id text;
ALTER TABLE organizations ADD COLUMN billing_event_at bigint;
CREATE UNIQUE INDEX organizations_by_stripe_customer ON organizations (stripe_customer_id)
    WHERE stripe_customer_id IS NOT NULL;

CREATE TABLE stripe_events (
    id               text PRIMARY KEY,
    type             text NOT NULL,
    organization_id  uuid REFERENCES organizations(id) ON DELETE CASCADE,
    outcome          text NOT NULL,
    received_at      timestamptz NOT NULL
);
