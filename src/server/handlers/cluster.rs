//! DescribeCluster.

use kafka_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use kafka_protocol::messages::{DescribeClusterRequest, DescribeClusterResponse};

use super::{str_bytes, this_broker, AUTHORIZED_OPERATIONS_OMITTED, CLUSTER_OPERATIONS_ALL};
use crate::shard;

pub fn describe_cluster(req: DescribeClusterRequest) -> DescribeClusterResponse {
    let (node, host, port) = this_broker();
    let mut broker = DescribeClusterBroker::default();
    broker.broker_id = node;
    broker.host = host;
    broker.port = port;
    let mut r = DescribeClusterResponse::default();
    r.endpoint_type = req.endpoint_type;
    r.cluster_id = str_bytes(shard::current().with_image(|i| i.cluster_id.clone()));
    r.controller_id = node;
    r.brokers = vec![broker];
    r.cluster_authorized_operations = match req.include_cluster_authorized_operations {
        true => CLUSTER_OPERATIONS_ALL,
        false => AUTHORIZED_OPERATIONS_OMITTED,
    };
    r
}
