//! Responses as each protocol shapes them.

use serde_json::{json, Value};

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
    pub delivery: Delivery,
}

/// How the reply reaches the client (after the request took effect).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Delivery {
    #[default]
    Whole,
    /// The connection closes with no answer.
    Lost,
    /// Half the body, with a length that says it is all.
    CutShort,
    /// A gateway's 502 HTML page in place of the answer.
    GatewayPage,
}

impl Reply {
    /// A success with no body (`204`, or `200` where the model says so).
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            delivery: Delivery::Whole,
        }
    }

    pub fn json(status: u16, body: &Value) -> Self {
        Self {
            status,
            headers: vec![("content-type", "application/json".to_owned())],
            body: body.to_string().into_bytes(),
            delivery: Delivery::Whole,
        }
    }

    /// A rest-json error (DRS): the code in `x-amzn-ErrorType`, the message in the body.
    pub fn rest_json_error(
        status: u16,
        code: &str,
        message: &str,
        retry_after: Option<u32>,
    ) -> Self {
        let mut reply = Self::json(status, &json!({"message": message, "code": code}));
        reply.headers.push(("x-amzn-errortype", code.to_owned()));
        if let Some(seconds) = retry_after {
            reply.headers.push(("retry-after", seconds.to_string()));
        }
        reply
    }

    /// A rest-json `ValidationException` naming the field, as DRS answers it.
    pub fn validation(field: &str, message: &str) -> Self {
        let body = json!({
            "message": format!("{field}: {message}"),
            "code": "ValidationException",
            "reason": "fieldValidationFailed",
            "fieldList": [{"name": field, "message": message}],
        });
        let mut reply = Self::json(400, &body);
        reply
            .headers
            .push(("x-amzn-errortype", "ValidationException".to_owned()));
        reply
    }

    /// An awsJson1.1 error (EventBridge).
    pub fn aws_json_error(status: u16, code: &str, message: &str) -> Self {
        let mut reply = Self::json(status, &json!({"__type": code, "message": message}));
        reply.headers[0].1 = "application/x-amz-json-1.1".to_owned();
        reply
    }

    /// An awsQuery error (STS).
    pub fn query_error(status: u16, code: &str, message: &str) -> Self {
        let body = format!(
            "<ErrorResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\"><Error><Type>Sender</Type><Code>{code}</Code><Message>{}</Message></Error><RequestId>local</RequestId></ErrorResponse>",
            xml_escape(message)
        );
        Self {
            status,
            headers: vec![("content-type", "text/xml".to_owned())],
            body: body.into_bytes(),
            delivery: Delivery::Whole,
        }
    }

    pub fn xml(body: String) -> Self {
        Self {
            status: 200,
            headers: vec![("content-type", "text/xml".to_owned())],
            body: body.into_bytes(),
            delivery: Delivery::Whole,
        }
    }
}

pub fn xml_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
