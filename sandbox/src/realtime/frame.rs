//! Phoenix channel frames, as Realtime's two serializers put them on the wire (text frames only):
//! - `vsn=1.0.0` (the server's default): an object `{"topic","event","payload","ref","join_ref"}`;
//! - `vsn=2.0.0` (realtime-js's default): an array `[join_ref, ref, topic, event, payload]`.
//!
//! Refs are kept as the JSON the client sent (realtime-js sends strings) and echoed unchanged.

use serde_json::{json, Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serializer {
    V1,
    V2,
}

impl Serializer {
    /// The serializer for the `vsn` query parameter; Realtime's default is 1.0.0.
    pub fn from_vsn(vsn: Option<&str>) -> Result<Serializer, String> {
        match vsn {
            None | Some("1.0.0") => Ok(Serializer::V1),
            Some("2.0.0") => Ok(Serializer::V2),
            Some(other) => Err(format!("unsupported vsn {other:?}: use 1.0.0 or 2.0.0")),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    pub join_ref: Value,
    pub reference: Value,
    pub topic: String,
    pub event: String,
    pub payload: Value,
}

impl Frame {
    /// A server push: no ref (`system`, `phx_close` carry the channel's join_ref; changes carry none).
    pub fn push(join_ref: Value, topic: &str, event: &str, payload: Value) -> Frame {
        Frame { join_ref, reference: Value::Null, topic: topic.to_owned(), event: event.to_owned(), payload }
    }

    /// `phx_reply` to `request`: `{"status", "response"}` with the request's refs.
    pub fn reply(request: &Frame, status: &str, response: Value) -> Frame {
        Frame {
            join_ref: request.join_ref.clone(),
            reference: request.reference.clone(),
            topic: request.topic.clone(),
            event: "phx_reply".to_owned(),
            payload: json!({ "status": status, "response": response }),
        }
    }

    pub fn decode(serializer: Serializer, text: &str) -> Result<Frame, String> {
        let value: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let string =
            |v: &Value, what: &str| v.as_str().map(str::to_owned).ok_or_else(|| format!("{what} must be a string"));
        match serializer {
            Serializer::V2 => {
                let Value::Array(items) = value else { return Err("a vsn 2.0.0 frame is a JSON array".into()) };
                let [join_ref, reference, topic, event, payload]: [Value; 5] =
                    items.try_into().map_err(|_| "a vsn 2.0.0 frame has 5 elements".to_string())?;
                Ok(Frame {
                    topic: string(&topic, "topic")?,
                    event: string(&event, "event")?,
                    join_ref,
                    reference,
                    payload,
                })
            }
            Serializer::V1 => {
                let Value::Object(mut fields) = value else { return Err("a vsn 1.0.0 frame is a JSON object".into()) };
                let mut take = |name: &str| fields.remove(name).unwrap_or(Value::Null);
                let (topic, event) = (take("topic"), take("event"));
                Ok(Frame {
                    topic: string(&topic, "topic")?,
                    event: string(&event, "event")?,
                    payload: take("payload"),
                    reference: take("ref"),
                    join_ref: take("join_ref"),
                })
            }
        }
    }

    pub fn encode(&self, serializer: Serializer) -> String {
        let value = match serializer {
            Serializer::V2 => json!([self.join_ref, self.reference, self.topic, self.event, self.payload]),
            Serializer::V1 => {
                let mut fields = Map::new();
                fields.insert("topic".into(), json!(self.topic));
                fields.insert("event".into(), json!(self.event));
                fields.insert("payload".into(), self.payload.clone());
                fields.insert("ref".into(), self.reference.clone());
                fields.insert("join_ref".into(), self.join_ref.clone());
                Value::Object(fields)
            }
        };
        value.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vsn_picks_the_serializer() {
        assert_eq!(Serializer::from_vsn(None), Ok(Serializer::V1));
        assert_eq!(Serializer::from_vsn(Some("1.0.0")), Ok(Serializer::V1));
        assert_eq!(Serializer::from_vsn(Some("2.0.0")), Ok(Serializer::V2));
        assert!(Serializer::from_vsn(Some("3.0.0")).is_err());
    }

    #[test]
    fn v2_frames_are_arrays_both_ways() {
        let text = r#"["1","1","realtime:ops","phx_join",{"config":{}}]"#;
        let frame = Frame::decode(Serializer::V2, text).unwrap();
        assert_eq!((frame.topic.as_str(), frame.event.as_str()), ("realtime:ops", "phx_join"));
        assert_eq!((frame.join_ref.clone(), frame.reference.clone()), (json!("1"), json!("1")));
        let reply = Frame::reply(&frame, "ok", json!({}));
        let encoded: Value = serde_json::from_str(&reply.encode(Serializer::V2)).unwrap();
        assert_eq!(encoded, json!(["1", "1", "realtime:ops", "phx_reply", {"status": "ok", "response": {}}]));
        let push = Frame::push(Value::Null, "realtime:ops", "postgres_changes", json!({"ids": [1]}));
        assert_eq!(push.encode(Serializer::V2), r#"[null,null,"realtime:ops","postgres_changes",{"ids":[1]}]"#);
    }

    #[test]
    fn v1_frames_are_objects_both_ways() {
        let text = r#"{"topic":"phoenix","event":"heartbeat","payload":{},"ref":"7"}"#;
        let frame = Frame::decode(Serializer::V1, text).unwrap();
        assert_eq!(frame.join_ref, Value::Null, "a missing join_ref is null");
        let reply: Value = serde_json::from_str(&Frame::reply(&frame, "ok", json!({})).encode(Serializer::V1)).unwrap();
        assert_eq!(
            reply,
            json!({"topic": "phoenix", "event": "phx_reply", "payload": {"status": "ok", "response": {}},
                   "ref": "7", "join_ref": null})
        );
    }

    #[test]
    fn malformed_frames_are_refused() {
        assert!(Frame::decode(Serializer::V2, r#"{"topic":"a","event":"b"}"#).is_err());
        assert!(Frame::decode(Serializer::V2, r#"[null,"1","phoenix","heartbeat"]"#).is_err());
        assert!(Frame::decode(Serializer::V2, r#"[null,"1",7,"heartbeat",{}]"#).is_err());
        assert!(Frame::decode(Serializer::V1, r#"["1","1","t","e",{}]"#).is_err());
        assert!(Frame::decode(Serializer::V1, "not json").is_err());
    }
}
