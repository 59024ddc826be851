// The web page (web/, compiled in) at / and an OAE report folder at
// /reports/. The page's files carry no data and load without the API key;
// everything the page reads or changes goes through the API, which needs it.
#include <httplib.h>

#include <filesystem>

#include <fmt/format.h>

#include "frugal/error.h"
#include "server/server_impl.h"
#include "server/web_assets.h"

namespace frugal {

void Server::Impl::add_web_routes() {
  for (const server::WebAsset& asset : server::web_assets()) {
    const std::string path = asset.path;
    auto serve = [this, asset](const httplib::Request&, httplib::Response& response) {
      response.set_content(reinterpret_cast<const char*>(asset.data), asset.size, asset.content_type);
      response.set_header("Cache-Control", "no-cache");
      response.set_header("X-Content-Type-Options", "nosniff");
      metrics.request("/", 200);
    };
    http.Get(path, serve);
    if (path == "/index.html") http.Get("/", serve);
  }
  if (!options.oae_report_dir.empty()) {
    if (!std::filesystem::is_directory(options.oae_report_dir)) {
      throw Error(fmt::format("--oae-report {}: not a folder (give the --out folder of `frugal oae run`)",
                              options.oae_report_dir.string()));
    }
    http.set_mount_point("/reports", options.oae_report_dir.string());
    http.Get("/reports", [](const httplib::Request&, httplib::Response& response) {
      response.set_redirect("/reports/report.html");
    });
  }
}

}  // namespace frugal
