//! InitProducerId for idempotent producers: a fresh producer id with epoch 0, as Kafka does when
//! no transactional id is given (the transaction coordinator is not implemented yet).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use crate::controller;

pub async fn handle(req: InitProducerIdRequest) -> InitProducerIdResponse {
    let mut r = InitProducerIdResponse::default();
    r.producer_id = ProducerId(-1);
    r.producer_epoch = -1;
    if req.transactional_id.is_some() {
        // Transactions need a transaction coordinator, which does not exist yet.
        r.error_code = ResponseError::InvalidRequest.code();
        return r;
    }
    match controller::allocate_producer_id().await {
        Ok(Ok(id)) => {
            r.producer_id = ProducerId(id);
            r.producer_epoch = 0;
        }
        Ok(Err(e)) => {
            tracing::error!("InitProducerId: {e}");
            r.error_code = ResponseError::KafkaStorageError.code();
        }
        Err(e) => {
            tracing::error!("InitProducerId: {e}");
            r.error_code = ResponseError::CoordinatorNotAvailable.code();
        }
    }
    r
}
