//! DescribeCluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{
    all_brokers, controller_id, str_bytes, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL,
};
use crate::shard;

pub fn describe_cluster(req: DescribeClusterRequest) -> DescribeClusterResponse {
    let mut r = DescribeClusterResponse::default();
    r.endpoint_type = req.endpoint_type;
    r.cluster_id = str_bytes(shard::current().with_image(|i| i.cluster_id.clone()));
    r.controller_id = controller_id();
    r.brokers = all_brokers()
        .into_iter()
        .map(|(id, host, port)| {
            let mut b = DescribeClusterBroker::default();
            b.broker_id = id;
            b.host = host;
            b.port = port;
            b
        })
        .collect();
    r.cluster_authorized_operations = match req.include_cluster_authorized_operations {
        true => CLUSTER_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    r
}
