#pragma once
// CAF type IDs of rml's messages, so that they can be serialised and sent between nodes.

#include <caf/type_id.hpp>

#include "messaging/messages.hpp"

CAF_BEGIN_TYPE_ID_BLOCK(rml, caf::first_custom_type_id)
CAF_ADD_TYPE_ID(rml, (rml::messaging::float_payload))
CAF_ADD_TYPE_ID(rml, (rml::messaging::event))
CAF_ADD_TYPE_ID(rml, (rml::messaging::event_batch))
CAF_ADD_TYPE_ID(rml, (rml::messaging::event_acked))
CAF_ADD_TYPE_ID(rml, (rml::messaging::feature_batch))
CAF_ADD_TYPE_ID(rml, (rml::messaging::model_snapshot))
CAF_ADD_TYPE_ID(rml, (rml::messaging::predict_request))
CAF_ADD_TYPE_ID(rml, (rml::messaging::predict_reply))
CAF_ADD_TYPE_ID(rml, (rml::messaging::metrics_sample))
CAF_ADD_TYPE_ID(rml, (rml::messaging::child_restarted))
CAF_ADD_TYPE_ID(rml, (rml::messaging::trainer_checkpoint))
CAF_ADD_TYPE_ID(rml, (rml::messaging::trainer_status))
CAF_ADD_TYPE_ID(rml, (rml::messaging::source_status))
CAF_ADD_TYPE_ID(rml, (rml::messaging::batching_settings))
CAF_ADD_TYPE_ID(rml, (rml::messaging::prediction_feedback))
CAF_ADD_TYPE_ID(rml, (rml::messaging::serving_info))
CAF_ADD_TYPE_ID(rml, (rml::messaging::ticketed_request))
CAF_ADD_TYPE_ID(rml, (rml::messaging::predict_burst))
CAF_ADD_TYPE_ID(rml, (rml::messaging::ticketed_answer))
CAF_ADD_TYPE_ID(rml, (rml::messaging::predict_answers))
CAF_ADD_TYPE_ID(rml, (rml::messaging::training_position))
CAF_ADD_TYPE_ID(rml, (rml::messaging::model_refused))
CAF_ADD_TYPE_ID(rml, (rml::messaging::replica_status))
CAF_ADD_TYPE_ID(rml, (rml::messaging::lane_status))
CAF_ADD_TYPE_ID(rml, (rml::messaging::lane_evaluation))
CAF_ADD_TYPE_ID(rml, (rml::messaging::serving_status))
CAF_ADD_TYPE_ID(rml, (rml::messaging::child_replaced))
CAF_ADD_TYPE_ID(rml, (rml::messaging::burst_routed))
CAF_ADD_TYPE_ID(rml, (rml::messaging::prediction_outcome))
CAF_ADD_TYPE_ID(rml, (rml::messaging::lane_outcomes))
CAF_END_TYPE_ID_BLOCK(rml)
