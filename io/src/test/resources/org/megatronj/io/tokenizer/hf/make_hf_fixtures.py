"""Makes hf-fixtures.json: token ids and decoded texts computed by Hugging Face's `tokenizers`
library (the Rust tokenizer behind transformers' fast tokenizers, which Megatron's
HuggingFaceTokenizer calls) for the tokenizer.json layouts in this folder.

    pip install tokenizers    # 0.22.2 made the committed file
    python3 make_hf_fixtures.py <repository>/data/gpt2 > hf-fixtures.json

Each *.template.json is a tokenizer.json without its BPE vocabulary and merges; they are filled
in from GPT-2's gpt2-vocab.json and gpt2-merges.txt (the argument's folder), exactly as the Java
test (HuggingFaceTokenizerTest.tokenizerJson) does, so the fixtures stay small.
"""
import json
import pathlib
import random
import sys

import tokenizers

HERE = pathlib.Path(__file__).parent
LAYOUTS = ["gpt2", "llama3-style", "digits-roberta"]


def tokenizer_json(layout, gpt2):
    template = json.loads((HERE / f"{layout}.template.json").read_text(encoding="utf-8"))
    vocab = json.loads((gpt2 / "gpt2-vocab.json").read_text(encoding="utf-8"))
    lines = (gpt2 / "gpt2-merges.txt").read_text(encoding="utf-8").split("\n")
    merges = [l for i, l in enumerate(lines) if l.strip() and not (i == 0 and l.startswith("#version"))]
    template["model"]["vocab"] = vocab
    template["model"]["merges"] = merges
    return json.dumps(template, ensure_ascii=False)


texts = [
    "Hello world", "Hello, world! It's a test. They'll say we've done it, don't you think?",
    "  two leading", "trailing two  ", "a  b   c    d", "x\n\ny", "x \r\n y", "tabs\t\tand \t mixed",
    "Numbers 1234567 and 3.14159, 1,000,000 and -42", "HELLO Wörld ÆØÅ straße", "naïve and nai\u0308ve café",
    "日本語のテキスト、中文文本。", "emoji 😀 👍🏽 family 👨‍👩‍👧", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "\u00a0nbsp \u2028sep\u3000wide",
    "one<|endoftext|>two", "<|begin_of_text|>already there", "end <|eot_id|>", "a <tag> b", "a<tag>b", "  <tag>  x",
    "Zorp met Zorpy and Zorp's dog; ZorpZorp Zorp", "x-y-z --flag a-1-2", "IT'S LOUD", "", " ", "\n",
    "<|endoftext|>", "naïve", "line one\nline two\n\n\nthree",
]
rng = random.Random(20261207)
pool = list("ab Z9'sr\n\t .,!?-é中😀<>|") + [" ", " ", "'", "<tag>", "Zorp", "<|eot_id|>", "ï", "i\u0308", "12"]
for _ in range(60):
    texts.append("".join(rng.choice(pool) for _ in range(rng.randint(1, 30))))

gpt2 = pathlib.Path(sys.argv[1])
out = {"generator": f"tokenizers {tokenizers.__version__} via make_hf_fixtures.py", "layouts": {}}
for layout in LAYOUTS:
    tok = tokenizers.Tokenizer.from_str(tokenizer_json(layout, gpt2))
    cases = []
    for t in texts:
        ids = tok.encode(t).ids
        cases.append({"text": t, "ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    # decoding ids that split a character's UTF-8 bytes, and special ids inside text
    for ids in ([5099, 40367, 234], [50256, 15496, 50256], [164, 245, 98], [220, 220, 198, 197]):
        cases.append({"ids": ids, "decoded": tok.decode(ids, skip_special_tokens=False)})
    out["layouts"][layout] = {"vocab_size": tok.get_vocab_size(with_added_tokens=True), "cases": cases}
print(json.dumps(out, ensure_ascii=True))
