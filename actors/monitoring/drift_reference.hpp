#pragma once
// A training reference between its two forms: the drift library's (actors/monitoring/drift.hpp,
// per feature) and the message's (messaging::input_reference, flattened into a snapshot).

#include <algorithm>
#include <optional>

#include "actors/monitoring/drift.hpp"
#include "messaging/messages.hpp"

namespace rml::actors::drift {

inline messaging::input_reference to_message(const feature_reference& reference) {
  messaging::input_reference flat;
  flat.rows = reference.rows;
  for (std::size_t feature = 0; feature < reference.features(); ++feature) {
    flat.edges_per_feature.push_back(std::uint32_t(reference.edges[feature].size()));
    flat.edges.insert(flat.edges.end(), reference.edges[feature].begin(), reference.edges[feature].end());
    flat.shares.insert(flat.shares.end(), reference.shares[feature].begin(), reference.shares[feature].end());
  }
  return flat;
}

/// The reference a message carries; nothing when its parts do not add up (a message from an
/// incompatible sender: refused, not trusted).
inline std::optional<feature_reference> from_message(const messaging::input_reference& flat) {
  feature_reference reference;
  reference.rows = flat.rows;
  std::size_t edge_at = 0, share_at = 0;
  for (std::uint32_t edges : flat.edges_per_feature) {
    if (edge_at + edges > flat.edges.size() || share_at + edges + 1 > flat.shares.size()) return std::nullopt;
    reference.edges.emplace_back(flat.edges.begin() + std::ptrdiff_t(edge_at), flat.edges.begin() + std::ptrdiff_t(edge_at + edges));
    reference.shares.emplace_back(flat.shares.begin() + std::ptrdiff_t(share_at), flat.shares.begin() + std::ptrdiff_t(share_at + edges + 1));
    if (!std::is_sorted(reference.edges.back().begin(), reference.edges.back().end())) return std::nullopt;
    edge_at += edges;
    share_at += edges + 1;
  }
  if (edge_at != flat.edges.size() || share_at != flat.shares.size()) return std::nullopt;
  return reference;
}

}  // namespace rml::actors::drift
