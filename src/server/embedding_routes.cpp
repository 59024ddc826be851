// POST /v1/embeddings: the served model's embedding of each input (its final
// hidden states averaged over the tokens, length 1: Model::embed), in
// OpenAI's format (embedding_request.cpp).
#include <fmt/format.h>

#include "frugal/error.h"
#include "server/embedding_request.h"
#include "server/openai_api.h"
#include "server/server_impl.h"

namespace frugal {

using json = nlohmann::json;

void Server::Impl::embeddings(const httplib::Request& http_request, httplib::Response& response) {
  check_key(http_request);
  response.set_content(embed(server::parse_json_object(http_request.body), false).dump(), "application/json");
  metrics.request("/v1/embeddings", 200);
}

json Server::Impl::embed(const json& body, bool truncate) {
  const server::EmbeddingRequest request =
      server::parse_embedding_request(body, tokenizer, model_vocab(), options.context, truncate);
  if (request.model != options.model_name) {
    throw server::ApiError(404, "invalid_request_error",
                           fmt::format("the model '{}' does not embed here; use '{}'", request.model,
                                       options.model_name),
                           "model", "model_not_found");
  }
  // On the scheduler thread, between batch steps: the model is not shared.
  std::vector<std::vector<float>> vectors;
  run_on_engine([&] {
    for (const auto& tokens : request.inputs) vectors.push_back(this->model.embed(tokens));
  });
  return server::embedding_reply(request, vectors, options.model_name);
}

}  // namespace frugal
