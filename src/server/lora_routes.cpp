// LoRA adapters per request: the server's adapters (loaded at start with
// --lora) listed at GET /lora-adapters and as models MODEL+ADAPTER, and the
// scales a request asks for (llama-server's `lora` field, or such a model).
#include <fmt/format.h>

#include "server/server_impl.h"

namespace frugal {

using nlohmann::json;

std::vector<std::string> Server::Impl::adapter_names() const {
  std::vector<std::string> names;
  for (const LoraInfo& info : model.loras()) {
    std::string name = info.path.stem().string();
    // Two files of one name: the later ones are told apart by their id.
    if (std::find(names.begin(), names.end(), name) != names.end()) name += fmt::format("-{}", names.size());
    names.push_back(name);
  }
  return names;
}

std::vector<float> Server::Impl::adapter_scales(const server::CompletionRequest& request) const {
  const std::vector<LoraInfo>& loras = model.loras();
  std::vector<float> scales;
  if (const auto plus = request.model.find('+'); plus != std::string::npos) {
    const std::vector<std::string> names = adapter_names();
    const std::string wanted = request.model.substr(plus + 1);
    const auto found = std::find(names.begin(), names.end(), wanted);
    if (request.model.substr(0, plus) != options.model_name || found == names.end()) {
      throw server::ApiError(404, "invalid_request_error",
                             fmt::format("the model '{}' does not exist; GET /v1/models lists them", request.model),
                             "model", "model_not_found");
    }
    if (request.lora) {
      throw server::invalid_request("give either lora or a model MODEL+ADAPTER, not both", "lora");
    }
    const auto index = static_cast<size_t>(found - names.begin());
    scales.assign(loras.size(), 0.0f);
    scales[index] = loras[index].scale;
  }
  if (request.lora) {
    if (loras.empty()) {
      throw server::invalid_request("this server has no LoRA adapters; start it with --lora FILE", "lora");
    }
    scales.assign(loras.size(), 0.0f);  // adapters not listed are off, as in llama-server
    for (const auto& [id, scale] : *request.lora) {
      if (static_cast<size_t>(id) >= loras.size()) {
        throw server::invalid_request(fmt::format("adapter {} does not exist; this server has {} (GET /lora-adapters)",
                                                  id, loras.size()),
                                      "lora");
      }
      scales[static_cast<size_t>(id)] = scale;
    }
  }
  return scales;
}

void Server::Impl::add_lora_routes() {
  http.Get("/lora-adapters", guarded("/lora-adapters", [this](const httplib::Request& request,
                                                                httplib::Response& response) {
    check_key(request);
    json list = json::array();
    const std::vector<std::string> names = adapter_names();
    for (size_t i = 0; i < model.loras().size(); ++i) {
      const LoraInfo& info = model.loras()[i];
      list.push_back({{"id", i}, {"path", info.path.string()}, {"scale", info.scale}, {"name", names[i]},
                      {"model", options.model_name + "+" + names[i]}});
    }
    response.set_content(list.dump(), "application/json");
    metrics.request("/lora-adapters", 200);
  }));
}

}  // namespace frugal
