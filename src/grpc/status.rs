//! An [`ApiError`] as a gRPC status: the code a gRPC client branches on, the message the
//! protocol's REST error carries, modelgate's stable code in the `modelgate-code` trailer, and
//! `google.rpc.RetryInfo` when the client should retry later.

use axum::http::StatusCode;
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::http::problem::ApiError;

/// The trailer that names modelgate's stable error code.
pub const CODE_KEY: &str = "modelgate-code";

fn code(status: StatusCode) -> Code {
    match status {
        StatusCode::UNAUTHORIZED => Code::Unauthenticated,
        StatusCode::FORBIDDEN => Code::PermissionDenied,
        StatusCode::NOT_FOUND => Code::NotFound,
        // A quota: the key's rate or its prepaid credits.
        StatusCode::TOO_MANY_REQUESTS | StatusCode::PAYMENT_REQUIRED => Code::ResourceExhausted,
        StatusCode::REQUEST_TIMEOUT => Code::DeadlineExceeded,
        StatusCode::SERVICE_UNAVAILABLE => Code::Unavailable,
        status if status.is_client_error() => Code::InvalidArgument,
        _ => Code::Internal,
    }
}

pub fn status(error: &ApiError) -> Status {
    let code = code(error.v2_status());
    let message = error.v2_body().error;
    let mut metadata = MetadataMap::new();
    metadata.insert(CODE_KEY, MetadataValue::from_static(error.code.as_str()));
    match error.retry_after() {
        Some(delay) => Status::with_error_details_and_metadata(
            code,
            message,
            ErrorDetails::with_retry_info(Some(delay)),
            metadata,
        ),
        None => Status::with_metadata(code, message, metadata),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::http::problem::ErrorCode;

    #[test]
    fn a_rate_limit_is_resource_exhausted_with_its_retry_delay_and_code() {
        let status = status(&ApiError::rate_limited(Duration::from_millis(2500)));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(
            status
                .metadata()
                .get(CODE_KEY)
                .and_then(|v| v.to_str().ok()),
            Some("rate_limited")
        );
        let details = status.get_error_details();
        assert_eq!(
            details.retry_info().and_then(|r| r.retry_delay),
            Some(Duration::from_secs(3))
        );
    }

    #[test]
    fn each_status_class_has_its_code() {
        let cases = [
            (StatusCode::UNAUTHORIZED, Code::Unauthenticated),
            (StatusCode::FORBIDDEN, Code::PermissionDenied),
            (StatusCode::NOT_FOUND, Code::NotFound),
            (StatusCode::BAD_REQUEST, Code::InvalidArgument),
            (StatusCode::UNPROCESSABLE_ENTITY, Code::InvalidArgument),
            (StatusCode::PAYMENT_REQUIRED, Code::ResourceExhausted),
            (StatusCode::SERVICE_UNAVAILABLE, Code::Unavailable),
            (StatusCode::INTERNAL_SERVER_ERROR, Code::Internal),
        ];
        for (http, grpc) in cases {
            let error = ApiError::new(http, ErrorCode::NotFound, "t", "d");
            assert_eq!(status(&error).code(), grpc, "{http}");
        }
    }
}
