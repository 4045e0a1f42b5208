//! Response compression (gzip or br) when the client's `Accept-Encoding` asks for it.
//!
//! Only bodies of at least [`MIN_BYTES`] are compressed: a prediction or a problem is a few
//! hundred bytes, where compression would cost CPU on the hot path and save nothing on the
//! wire. What gains is `/metrics`, `/openapi.json`, `/status` and model descriptions.

use tower_http::compression::predicate::{And, NotForContentType, SizeAbove};
use tower_http::compression::{CompressionLayer, Predicate};

/// Smallest body worth compressing: below one packet's worth the saving is nil.
pub const MIN_BYTES: u16 = 1024;

type WhenWorthIt =
    And<And<And<SizeAbove, NotForContentType>, NotForContentType>, NotForContentType>;

/// tower-http's default predicate with a higher size floor: never gRPC or images (already
/// compressed), nor event streams (compression would hold their events back).
pub fn layer() -> CompressionLayer<WhenWorthIt> {
    CompressionLayer::new().compress_when(
        SizeAbove::new(MIN_BYTES)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE),
    )
}
