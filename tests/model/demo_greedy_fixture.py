"""Rewrites tests/model/demo_model_greedy.json for the committed demo model:
PyTorch's float32 greedy continuation of each fixture prompt, computed from
the model's own weights (the Q8_0 values, exactly) with the reference
Llama forward of tests/train/torch_reference/check_lora_gradients.py. Run it
by hand after the demo model changes (a merged fine-tune, say):

    /usr/bin/python3 tests/model/demo_greedy_fixture.py [--model models/frugal-demo-qa-q8_0.gguf]
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "tests", "train", "torch_reference"))
import check_lora_gradients as reference  # noqa: E402

import torch  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default=os.path.join(ROOT, "models", "frugal-demo-qa-q8_0.gguf"))
    ap.add_argument("--fixture", default=os.path.join(HERE, "demo_model_greedy.json"))
    ap.add_argument("--about", required=True, help="where the model comes from, for the fixture's 'about'")
    args = ap.parse_args()
    tables = reference.rope_tables
    reference.rope_tables = lambda config, n: tuple(t.float() for t in tables(config, n))  # float32 throughout
    metadata = reference.gguf.read_metadata(args.model)
    weights = {name: torch.from_numpy(values.copy()) for name, values in reference.read_weights(args.model).items()}
    model = reference.Reference(reference.Config(metadata), weights, {}, 0.0)
    with open(args.fixture) as f:
        fixture = json.load(f)
    with torch.no_grad():
        for prompt in fixture["prompts"]:
            tokens = list(prompt["tokens"])
            greedy = []
            for _ in range(fixture["max_tokens"]):
                token = int(torch.argmax(model.logits(tokens + greedy)[-1]))
                greedy.append(token)
                if token == fixture["eos"]:
                    break
            print(prompt["text"], "->", greedy == prompt["greedy"] and "unchanged" or greedy)
            prompt["greedy"] = greedy
    fixture["about"] = args.about
    with open(args.fixture, "w") as f:
        json.dump(fixture, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
