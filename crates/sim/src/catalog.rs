//! The catalog of realistic CRM integrations the simulator draws from.

use tripline_engine::Action;

use Action::{Delete, Export, Read, Write};

/// How busy an integration is in business hours.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Tier {
    /// A few calls per hour.
    Low,
    /// 1-5 calls per minute.
    Medium,
    /// 20-40 calls per minute.
    High,
}

/// One data type an integration uses: resource, action, relative weight and
/// the median records per call.
pub(crate) type Use = (&'static str, Action, f64, f64);

#[derive(Debug)]
pub(crate) struct Profile {
    pub slug: &'static str,
    pub name: &'static str,
    pub vendor: &'static str,
    pub owner: &'static str,
    pub purpose: &'static str,
    pub agent: &'static str,
    pub tier: Tier,
    /// Nightly batch job 02:00-02:30 UTC.
    pub batch: bool,
    /// Month-end surge (billing).
    pub billing: bool,
    pub uses: &'static [Use],
    /// Granted in the registry but never used by benign traffic.
    pub unused: &'static [&'static str],
}

macro_rules! p {
    ($slug:literal, $name:literal, $vendor:literal, $owner:literal, $purpose:literal, $agent:literal, $tier:ident, $batch:literal, $billing:literal, [$($u:expr),* $(,)?], [$($x:literal),* $(,)?]) => {
        Profile { slug: $slug, name: $name, vendor: $vendor, owner: $owner, purpose: $purpose, agent: $agent, tier: Tier::$tier, batch: $batch, billing: $billing, uses: &[$($u),*], unused: &[$($x),*] }
    };
}

pub(crate) const PROFILES: &[Profile] = &[
    p!(
        "mailchimp-sync",
        "Mailchimp audience sync",
        "Intuit Mailchimp",
        "marketing-ops@acme.example",
        "Sync newsletter subscribers",
        "mailchimp-connector/4.2",
        Medium,
        false,
        false,
        [("contacts", Read, 0.7, 40.0), ("contacts", Write, 0.3, 2.0)],
        ["deals:read"]
    ),
    p!(
        "zendesk-desk",
        "Zendesk support desk",
        "Zendesk",
        "support-ops@acme.example",
        "Link tickets to CRM contacts",
        "zendesk-crm/2.11",
        Medium,
        false,
        false,
        [
            ("tickets", Read, 0.4, 10.0),
            ("tickets", Write, 0.2, 1.0),
            ("contacts", Read, 0.3, 3.0),
            ("notes", Write, 0.1, 1.0)
        ],
        ["attachments:read"]
    ),
    p!(
        "stripe-billing",
        "Stripe billing sync",
        "Stripe",
        "finance-systems@acme.example",
        "Push payments and subscriptions",
        "stripe-crm-sync/1.8",
        Medium,
        false,
        true,
        [
            ("payments", Write, 0.4, 1.0),
            ("payments", Read, 0.3, 15.0),
            ("invoices", Read, 0.2, 10.0),
            ("contacts", Read, 0.1, 2.0)
        ],
        ["invoices:export"]
    ),
    p!(
        "segment-analytics",
        "Segment customer data",
        "Twilio Segment",
        "data-platform@acme.example",
        "Stream CRM traits into the CDP",
        "analytics-node/3.4",
        High,
        false,
        false,
        [
            ("contacts", Read, 0.5, 20.0),
            ("companies", Read, 0.2, 10.0),
            ("deals", Read, 0.1, 10.0),
            ("activities", Write, 0.2, 1.0)
        ],
        ["contacts:export"]
    ),
    p!(
        "quickbooks-invoicing",
        "QuickBooks invoicing",
        "Intuit QuickBooks",
        "finance-systems@acme.example",
        "Create invoices from closed deals",
        "qbo-connector/6.0",
        Low,
        true,
        true,
        [
            ("invoices", Read, 0.4, 20.0),
            ("invoices", Write, 0.3, 2.0),
            ("payments", Read, 0.2, 15.0),
            ("companies", Read, 0.1, 3.0)
        ],
        ["payments:export"]
    ),
    p!(
        "intercom-chat",
        "Intercom messenger",
        "Intercom",
        "support-ops@acme.example",
        "Attach conversations to contacts",
        "intercom-crm/5.1",
        Medium,
        false,
        false,
        [
            ("contacts", Read, 0.4, 2.0),
            ("contacts", Write, 0.2, 1.0),
            ("notes", Write, 0.2, 1.0),
            ("tickets", Write, 0.2, 1.0)
        ],
        ["conversations:read"]
    ),
    p!(
        "twilio-sms",
        "Twilio SMS",
        "Twilio",
        "sales-ops@acme.example",
        "Log SMS activity",
        "twilio-crm/2.3",
        Medium,
        false,
        false,
        [
            ("contacts", Read, 0.5, 3.0),
            ("activities", Write, 0.5, 1.0)
        ],
        ["contacts:write"]
    ),
    p!(
        "openai-enrich",
        "OpenAI enrichment",
        "OpenAI",
        "revops@acme.example",
        "Summarise and enrich records",
        "openai-enricher/0.9",
        Low,
        false,
        false,
        [
            ("contacts", Read, 0.4, 10.0),
            ("companies", Read, 0.3, 5.0),
            ("notes", Write, 0.2, 1.0),
            ("contacts", Write, 0.1, 1.0)
        ],
        ["notes:read"]
    ),
    p!(
        "hubspot-import",
        "HubSpot import",
        "HubSpot",
        "revops@acme.example",
        "Nightly import from HubSpot",
        "hubspot-importer/3.0",
        Low,
        true,
        false,
        [
            ("contacts", Write, 0.5, 20.0),
            ("companies", Write, 0.2, 10.0),
            ("deals", Write, 0.2, 5.0),
            ("contacts", Read, 0.1, 30.0)
        ],
        ["deals:delete"]
    ),
    p!(
        "slack-notify",
        "Slack notifications",
        "Slack",
        "sales-ops@acme.example",
        "Post deal and ticket updates",
        "slack-crm-bot/1.4",
        Medium,
        false,
        false,
        [
            ("deals", Read, 0.6, 1.0),
            ("tickets", Read, 0.3, 1.0),
            ("activities", Read, 0.1, 5.0)
        ],
        ["contacts:read"]
    ),
    p!(
        "docusign-esign",
        "DocuSign eSignature",
        "DocuSign",
        "legal-ops@acme.example",
        "Attach signed contracts to deals",
        "docusign-crm/2.0",
        Low,
        false,
        false,
        [
            ("deals", Read, 0.5, 1.0),
            ("attachments", Write, 0.3, 1.0),
            ("contacts", Read, 0.2, 2.0)
        ],
        ["attachments:read"]
    ),
    p!(
        "gong-calls",
        "Gong call recording",
        "Gong",
        "sales-ops@acme.example",
        "Log calls and transcripts",
        "gong-crm/7.2",
        Medium,
        false,
        false,
        [
            ("activities", Write, 0.4, 1.0),
            ("notes", Write, 0.3, 1.0),
            ("contacts", Read, 0.2, 3.0),
            ("deals", Read, 0.1, 2.0)
        ],
        ["notes:read"]
    ),
    p!(
        "outreach-sequences",
        "Outreach sequences",
        "Outreach",
        "sales-ops@acme.example",
        "Run sales sequences",
        "outreach-sync/4.4",
        Medium,
        false,
        false,
        [
            ("contacts", Read, 0.5, 25.0),
            ("contacts", Write, 0.2, 2.0),
            ("activities", Write, 0.3, 1.0)
        ],
        ["deals:read"]
    ),
    p!(
        "zapier-automation",
        "Zapier automations",
        "Zapier",
        "it-automation@acme.example",
        "No-code workflows",
        "Zapier/1.0",
        High,
        false,
        false,
        [
            ("contacts", Read, 0.4, 5.0),
            ("deals", Read, 0.2, 3.0),
            ("deals", Write, 0.2, 1.0),
            ("tasks", Write, 0.2, 1.0)
        ],
        ["tasks:*"]
    ),
    p!(
        "calendly-meetings",
        "Calendly meetings",
        "Calendly",
        "sales-ops@acme.example",
        "Log booked meetings",
        "calendly-crm/1.2",
        Low,
        false,
        false,
        [
            ("contacts", Read, 0.5, 1.0),
            ("activities", Write, 0.5, 1.0)
        ],
        ["contacts:write"]
    ),
    p!(
        "snowflake-warehouse",
        "Snowflake warehouse load",
        "Snowflake",
        "data-platform@acme.example",
        "Nightly warehouse export",
        "snowflake-loader/2.9",
        Low,
        true,
        false,
        [
            ("contacts", Export, 0.4, 60.0),
            ("companies", Export, 0.3, 50.0),
            ("deals", Export, 0.3, 40.0)
        ],
        ["activities:export"]
    ),
    p!(
        "gainsight-cs",
        "Gainsight customer success",
        "Gainsight",
        "cs-ops@acme.example",
        "Health scores from CRM",
        "gainsight-connector/3.3",
        Medium,
        false,
        false,
        [
            ("companies", Read, 0.5, 10.0),
            ("tickets", Read, 0.3, 5.0),
            ("notes", Read, 0.2, 3.0)
        ],
        ["companies:write"]
    ),
    p!(
        "pandadoc-quotes",
        "PandaDoc quotes",
        "PandaDoc",
        "sales-ops@acme.example",
        "Generate quotes from deals",
        "pandadoc-crm/1.7",
        Low,
        false,
        false,
        [
            ("deals", Read, 0.5, 1.0),
            ("products", Read, 0.3, 10.0),
            ("attachments", Write, 0.2, 1.0)
        ],
        ["deals:write"]
    ),
    p!(
        "dropbox-files",
        "Dropbox file sync",
        "Dropbox",
        "it-automation@acme.example",
        "Store attachments",
        "dropbox-crm/2.2",
        Low,
        false,
        false,
        [
            ("attachments", Read, 0.5, 1.0),
            ("attachments", Write, 0.5, 1.0)
        ],
        ["attachments:delete"]
    ),
    p!(
        "linkedin-leads",
        "LinkedIn lead gen",
        "LinkedIn",
        "marketing-ops@acme.example",
        "Import lead-gen form fills",
        "linkedin-leadsync/1.1",
        Low,
        false,
        false,
        [
            ("contacts", Write, 0.8, 1.0),
            ("companies", Write, 0.2, 1.0)
        ],
        ["contacts:read"]
    ),
    p!(
        "netsuite-erp",
        "NetSuite ERP",
        "Oracle NetSuite",
        "finance-systems@acme.example",
        "Sync orders and invoices",
        "netsuite-suiteconnect/2024.2",
        Medium,
        true,
        true,
        [
            ("invoices", Read, 0.4, 20.0),
            ("payments", Read, 0.2, 20.0),
            ("products", Write, 0.2, 5.0),
            ("companies", Read, 0.2, 5.0)
        ],
        ["invoices:write"]
    ),
    p!(
        "jira-sync",
        "Jira issue sync",
        "Atlassian",
        "support-ops@acme.example",
        "Escalate tickets to engineering",
        "jira-crm-sync/5.0",
        Medium,
        false,
        false,
        [("tickets", Read, 0.6, 3.0), ("tickets", Write, 0.4, 1.0)],
        ["notes:write"]
    ),
    p!(
        "zoominfo-enrich",
        "ZoomInfo enrichment",
        "ZoomInfo",
        "revops@acme.example",
        "Enrich firmographics",
        "zoominfo-enrich/3.1",
        Low,
        false,
        false,
        [
            ("contacts", Read, 0.4, 30.0),
            ("contacts", Write, 0.3, 5.0),
            ("companies", Write, 0.3, 5.0)
        ],
        ["companies:read"]
    ),
    p!(
        "mixpanel-events",
        "Mixpanel product events",
        "Mixpanel",
        "data-platform@acme.example",
        "Product usage on contacts",
        "mixpanel-crm/2.6",
        Medium,
        false,
        false,
        [
            ("activities", Write, 0.7, 5.0),
            ("contacts", Read, 0.3, 10.0)
        ],
        ["companies:read"]
    ),
    p!(
        "xero-accounting",
        "Xero accounting",
        "Xero",
        "finance-systems@acme.example",
        "Reconcile invoices",
        "xero-crm/1.9",
        Low,
        false,
        true,
        [("invoices", Read, 0.6, 20.0), ("payments", Read, 0.4, 20.0)],
        ["invoices:write"]
    ),
    p!(
        "freshdesk-support",
        "Freshdesk helpdesk",
        "Freshworks",
        "support-ops@acme.example",
        "Second-line helpdesk",
        "freshdesk-crm/3.0",
        Medium,
        false,
        false,
        [
            ("tickets", Read, 0.5, 5.0),
            ("tickets", Write, 0.3, 1.0),
            ("contacts", Read, 0.2, 2.0)
        ],
        ["notes:write"]
    ),
    p!(
        "marketo-nurture",
        "Marketo nurture",
        "Adobe Marketo",
        "marketing-ops@acme.example",
        "Lead nurture programs",
        "marketo-sync/8.1",
        Medium,
        false,
        false,
        [
            ("contacts", Read, 0.5, 50.0),
            ("contacts", Write, 0.3, 5.0),
            ("lists", Write, 0.2, 1.0)
        ],
        ["lists:read"]
    ),
    p!(
        "aircall-voice",
        "Aircall telephony",
        "Aircall",
        "sales-ops@acme.example",
        "Log phone calls",
        "aircall-crm/2.0",
        Medium,
        false,
        false,
        [
            ("activities", Write, 0.5, 1.0),
            ("contacts", Read, 0.3, 1.0),
            ("notes", Write, 0.2, 1.0)
        ],
        ["contacts:write"]
    ),
    p!(
        "gmail-sync",
        "Gmail sync",
        "Google",
        "it-automation@acme.example",
        "Log emails to contacts",
        "google-workspace-crm/1.5",
        Medium,
        false,
        false,
        [
            ("activities", Write, 0.6, 1.0),
            ("contacts", Read, 0.4, 2.0)
        ],
        ["notes:write"]
    ),
    p!(
        "tableau-reports",
        "Tableau reporting",
        "Salesforce Tableau",
        "bi-team@acme.example",
        "Nightly dashboard refresh",
        "tableau-crm-connector/2024.1",
        Low,
        true,
        false,
        [
            ("deals", Read, 0.5, 80.0),
            ("companies", Read, 0.3, 60.0),
            ("contacts", Read, 0.2, 60.0)
        ],
        ["activities:read"]
    ),
];

/// Registered in the registry, never used: the audit's "remove" case.
pub(crate) const NEVER_USED: Profile = p!(
    "legacy-pipedrive-migration",
    "Pipedrive migration (legacy)",
    "Pipedrive",
    "revops@acme.example",
    "One-off migration, finished",
    "pipedrive-migrator/0.3",
    Low,
    false,
    false,
    [("contacts", Write, 1.0, 1.0)],
    ["contacts:read", "deals:write"]
);

/// Shadow integrations: absent from the registry.
pub(crate) const SHADOWS: &[(&str, &str)] = &[
    ("gsheets-export-tmp", "python-requests/2.31"),
    ("jdoe-personal-script", "curl/8.4.0"),
    ("zapier-shadow-7f3a", "Zapier/1.0"),
    ("apollo-trial", "apollo-io/1.0"),
    ("clay-enrich-test", "clay-http/0.2"),
    ("n8n-selfhosted", "n8n/1.19"),
    ("make-scenario-42", "Make/2.0"),
    ("retool-admin", "Retool/3.0"),
];

/// Shadow integrations' data types.
pub(crate) const SHADOW_USES: &[Use] = &[
    ("contacts", Read, 0.6, 80.0),
    ("deals", Read, 0.3, 40.0),
    ("contacts", Export, 0.1, 90.0),
];

/// Data types used for `scope_violation`: sensitive and rarely granted.
pub(crate) const FORBIDDEN: &[(&str, Action)] = &[
    ("payments", Export),
    ("notes", Export),
    ("users", Read),
    ("contacts", Delete),
    ("attachments", Export),
    ("deals", Delete),
    ("invoices", Export),
];

/// Human principals (some of whom set up integrations and later leave).
pub(crate) const HUMANS: &[&str] = &[
    "asha", "bruno", "chen", "dana", "emeka", "farah", "goran", "hana", "ivan", "julia", "kofi",
    "lena", "mateo", "nadia",
];

/// Field names returned per resource, for the optional `fields` array.
pub(crate) fn fields_for(resource: &str) -> &'static [&'static str] {
    match resource {
        "contacts" => &["email", "firstname", "lastname", "phone"],
        "companies" => &["name", "domain", "industry"],
        "deals" => &["dealname", "amount", "stage"],
        "payments" => &["amount", "currency", "status"],
        "invoices" => &["number", "amount", "due_date"],
        "tickets" => &["subject", "status", "priority"],
        _ => &["id"],
    }
}
