// frugal: LLM inference on modest hardware. Entry point and error edge: every
// frugal::Error and every bad argument becomes a one-line message on stderr
// and exit code 1 (help and --version exit 0).
#include <cstdio>
#include <exception>
#include <new>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "cli/arguments.h"
#include "cli/commands.h"
#include "frugal/error.h"

int main(int argc, char** argv) {
  CLI::App app{"frugal: cheap, simple LLM inference on modest hardware (GGUF models on CPU)", "frugal"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "frugal 0.1.0");
  frugal::cli::add_run_command(app);
  frugal::cli::add_info_command(app);
  frugal::cli::add_tokenize_command(app);
  frugal::cli::add_embed_command(app);
  frugal::cli::add_logits_command(app);
  frugal::cli::add_perplexity_command(app);
  frugal::cli::add_beam_command(app);
  frugal::cli::add_synth_command(app);
  frugal::cli::add_bench_command(app);
  frugal::cli::add_kb_command(app);
  frugal::cli::add_ask_command(app);
  frugal::cli::add_quantize_command(app);
  frugal::cli::add_retrofit_command(app);
  frugal::cli::add_lora_command(app);
  frugal::cli::add_finetune_command(app);
  frugal::cli::add_oae_command(app);
  frugal::cli::add_serve_command(app);
  try {
    std::vector<std::string> args = frugal::cli::with_llama_cpp_spellings(argc, argv);
    std::vector<char*> pointers;
    for (std::string& arg : args) pointers.push_back(arg.data());
    app.parse(static_cast<int>(pointers.size()), pointers.data());
  } catch (const CLI::Success& e) {
    return app.exit(e);  // --help, --version
  } catch (const CLI::ParseError& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", frugal::cli::parse_error_message(app, e));
    return 1;
  } catch (const frugal::Error& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fflush(stdout);
    fmt::print(stderr, "error: out of memory; use a smaller context (-c), a smaller model, or check that the file "
                       "is not corrupt\n");
    return 1;
  } catch (const std::exception& e) {
    std::fflush(stdout);
    fmt::print(stderr, "error: {}\n", e.what());
    return 1;
  }
  return 0;
}
