#include "cli/progress.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>

#include <fmt/format.h>

namespace frugal::cli {

PrefillProgress progress_bar(std::string label, bool quiet) {
  if (quiet) return {};
  struct State {
    std::chrono::steady_clock::time_point start = std::chrono::steady_clock::now();
    bool terminal = ::isatty(STDERR_FILENO) != 0;
  };
  auto state = std::make_shared<State>();
  return [label = std::move(label), state](size_t done, size_t total) {
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - state->start).count();
    const double rate = seconds > 0 ? static_cast<double>(done) / seconds : 0;
    const bool finished = done >= total;
    if (!state->terminal && !finished) return;
    constexpr int kWidth = 24;
    const int filled = total > 0 ? static_cast<int>(kWidth * static_cast<double>(done) / static_cast<double>(total))
                                 : kWidth;
    const std::string bar = std::string(static_cast<size_t>(filled), '#') + std::string(kWidth - filled, '.');
    const std::string eta = finished ? fmt::format("{:.1f} s", seconds)
                           : rate > 0 ? fmt::format("ETA {:.0f} s", static_cast<double>(total - done) / rate)
                                      : "ETA ?";
    fmt::print(stderr, "{}{} [{}] {}/{} tokens, {:.0f} tok/s, {}   {}", state->terminal ? "\r" : "", label, bar, done,
               total, rate, eta, finished ? "\n" : "");
    std::fflush(stderr);
  };
}

}  // namespace frugal::cli
