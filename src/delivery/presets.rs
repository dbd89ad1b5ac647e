//! Presets: the request each target's API expects for "put this media on this customer's
//! record", as templates over the record (see [`super::request`]).
//!
//! With a preset, a sink's `url` is the API's base address (the preset adds the path); its
//! `headers` carry the credentials (`Authorization = "Bearer ${TOKEN}"`); `params` name what
//! differs per account. Where the API allows it, the request is idempotent: an upsert keyed by
//! the record id, or a PATCH that sets the same fields again.

use serde_json::Value as Json;

use super::request::RequestSpec;

pub struct Preset {
    pub name: &'static str,
    pub method: &'static str,
    /// The URL template; `base` is the sink's `url`, or `default_base`.
    pub url: &'static str,
    pub default_base: &'static str,
    /// JSON skeleton; `None`: the record's own JSON.
    pub body: Option<&'static str>,
    /// What the README says a user must set up on the target's side.
    pub needs: &'static str,
}

/// A line for people (a ticket comment, a chat note) about a record.
const NOTE: &str = "{% if event == 'media.rejected' %}A file from the customer could not be stored ({{ error.code }}): {{ error.message }}\
{% elif event == 'media.deleted' %}Media removed: {{ record_id }}\
{% else %}{{ (media.kind or 'media') | capitalize }} from the customer: {{ media.url }}{% if media.duration_ms %} ({{ (media.duration_ms / 1000) | round(1) }} s){% endif %}{% endif %}";

pub const PRESETS: &[Preset] = &[
    Preset {
        name: "standard-webhooks",
        method: "POST",
        url: "{{ base }}",
        default_base: "",
        body: None,
        needs: "a receiver that verifies Standard Webhooks signatures",
    },
    Preset {
        name: "hubspot",
        method: "PATCH",
        url: "{{ base }}/crm/v3/objects/contacts/{{ crm.customer_id | required | urlencode }}",
        default_base: "https://api.hubapi.com",
        body: Some(
            r#"{"properties": {
                "mediaspool_record_id": "{{ record_id }}",
                "mediaspool_event": "{{ event }}",
                "mediaspool_media_url": "{{ media.url or '' }}",
                "mediaspool_media_kind": "{{ media.kind or '' }}",
                "mediaspool_media_duration_ms": "{{ media.duration_ms }}",
                "mediaspool_thumbnail_url": "{{ thumbnail.url or '' }}",
                "mediaspool_received_at": "{{ received_at or processed_at }}"}}"#,
        ),
        needs: "contact properties mediaspool_record_id, _event, _media_url, _media_kind, _media_duration_ms (number), _thumbnail_url, _received_at; crm.customer_id is the HubSpot contact id",
    },
    Preset {
        name: "salesforce",
        method: "PATCH",
        url: "{{ base }}/services/data/{{ params.api_version or 'v60.0' }}/sobjects/{{ params.object or 'Mediaspool_Media__c' }}/{{ params.external_id_field or 'Record_Id__c' }}/{{ record_id | urlencode }}",
        default_base: "",
        body: Some(
            r#"{"Event__c": "{{ event }}",
                "Media_URL__c": "{{ media.url }}",
                "Kind__c": "{{ media.kind }}",
                "Mime__c": "{{ media.mime }}",
                "Duration_ms__c": "{{ media.duration_ms }}",
                "Thumbnail_URL__c": "{{ thumbnail.url }}",
                "Customer_Id__c": "{{ crm.customer_id }}",
                "Chat_Id__c": "{{ crm.chat_id }}",
                "Message_Id__c": "{{ crm.message_id }}",
                "Received_At__c": "{{ received_at or processed_at }}",
                "Duplicate_Of__c": "{{ duplicate_of }}",
                "Error__c": "{{ error.message }}"}"#,
        ),
        needs: "a custom object (params.object, default Mediaspool_Media__c) with the external id field Record_Id__c and the fields of the body",
    },
    Preset {
        name: "zoho",
        method: "POST",
        url: "{{ base }}/crm/v8/{{ params.module or 'Mediaspool_Media' }}/upsert",
        default_base: "https://www.zohoapis.com",
        body: Some(
            r#"{"data": [{
                "Name": "{{ source.file_name }}",
                "Record_Id": "{{ record_id }}",
                "Event": "{{ event }}",
                "Media_URL": "{{ media.url }}",
                "Kind": "{{ media.kind }}",
                "Duration_ms": "{{ media.duration_ms }}",
                "Thumbnail_URL": "{{ thumbnail.url }}",
                "Customer_Id": "{{ crm.customer_id }}",
                "Chat_Id": "{{ crm.chat_id }}",
                "Received_At": "{{ received_at or processed_at }}"}],
              "duplicate_check_fields": ["Record_Id"]}"#,
        ),
        needs: "a custom module (params.module, default Mediaspool_Media) with a unique Record_Id field and the fields of the body",
    },
    Preset {
        name: "zendesk",
        method: "PUT",
        url: "{{ base }}/api/v2/tickets/{{ extra.zendesk_ticket_id | required | urlencode }}.json",
        default_base: "",
        body: Some(
            r#"{"ticket": {
                "comment": {"body": "NOTE", "public": false},
                "custom_fields": "{{ [{'id': params.media_url_field | int, 'value': media.url}] if params.media_url_field and media else [] }}"}}"#,
        ),
        needs: "the ticket id in the manifest's extra.zendesk_ticket_id; optionally params.media_url_field, the id of a ticket field for the media URL",
    },
    Preset {
        name: "chatwoot",
        method: "POST",
        url: "{{ base }}/api/v1/accounts/{{ params.account_id | required }}/conversations/{{ extra.chatwoot_conversation_id | required }}/messages",
        default_base: "",
        body: Some(r#"{"content": "NOTE", "message_type": "outgoing", "private": true}"#),
        needs: "params.account_id; the conversation id in the manifest's extra.chatwoot_conversation_id",
    },
    Preset {
        name: "zapier",
        method: "POST",
        url: "{{ base }}",
        default_base: "",
        body: Some(FLAT),
        needs: "a Catch Hook URL",
    },
    Preset {
        name: "make",
        method: "POST",
        url: "{{ base }}",
        default_base: "",
        body: Some(FLAT),
        needs: "a custom webhook URL",
    },
];

/// Flat scalar keys, what automation tools map best.
const FLAT: &str = r#"{
    "record_id": "{{ record_id }}",
    "event": "{{ event }}",
    "customer_id": "{{ crm.customer_id }}",
    "chat_id": "{{ crm.chat_id }}",
    "message_id": "{{ crm.message_id }}",
    "channel": "{{ crm.channel }}",
    "tags": "{{ crm.tags | join(',') }}",
    "file_name": "{{ source.file_name }}",
    "media_url": "{{ media.url }}",
    "media_kind": "{{ media.kind }}",
    "media_mime": "{{ media.mime }}",
    "media_bytes": "{{ media.bytes }}",
    "duration_ms": "{{ media.duration_ms }}",
    "width": "{{ media.width }}",
    "height": "{{ media.height }}",
    "thumbnail_url": "{{ thumbnail.url }}",
    "original_url": "{{ original.url }}",
    "duplicate_of": "{{ duplicate_of }}",
    "received_at": "{{ received_at }}",
    "processed_at": "{{ processed_at }}",
    "links_expire_at": "{{ links_expire_at }}",
    "error_code": "{{ error.code }}",
    "error_message": "{{ error.message }}"}"#;

impl Preset {
    /// The preset called `name`; `""` is `standard-webhooks`.
    pub fn named(name: &str) -> Option<&'static Preset> {
        let name = if name.is_empty() {
            "standard-webhooks"
        } else {
            name
        };
        PRESETS.iter().find(|p| p.name == name)
    }

    pub fn names() -> impl Iterator<Item = &'static str> {
        PRESETS.iter().map(|p| p.name)
    }

    pub fn spec(&self) -> RequestSpec {
        RequestSpec {
            method: self.method.to_string(),
            url: self.url.to_string(),
            headers: Default::default(),
            body: self.body.map(|b| {
                let body: Json = serde_json::from_str(b).expect("preset bodies are JSON");
                with_note(body)
            }),
        }
    }
}

/// Puts the [`NOTE`] template where a preset's body says `NOTE`.
fn with_note(value: Json) -> Json {
    match value {
        Json::String(s) if s == "NOTE" => Json::String(NOTE.to_string()),
        Json::Array(items) => Json::Array(items.into_iter().map(with_note).collect()),
        Json::Object(map) => Json::Object(map.into_iter().map(|(k, v)| (k, with_note(v))).collect()),
        other => other,
    }
}
