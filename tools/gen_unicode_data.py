# Generates src/tokenizer/unicode_data.cpp from Python's unicodedata:
#   python3 tools/gen_unicode_data.py src/tokenizer/unicode_data.cpp
# (categories grouped the way llama.cpp's gen-unicode-data.py does).
import unicodedata, re, sys
MAXCP = 0x110000
F_UNDEF, F_NUM, F_LET, F_SEP, F_MARK, F_PUNCT, F_SYM, F_CTRL = 1, 2, 4, 8, 16, 32, 64, 128
cat_flag = {'Cn': F_UNDEF, 'Cc': F_CTRL, 'Cf': F_CTRL, 'Co': F_CTRL, 'Cs': F_CTRL,
            'Ll': F_LET, 'Lm': F_LET, 'Lo': F_LET, 'Lt': F_LET, 'Lu': F_LET,
            'Mc': F_MARK, 'Me': F_MARK, 'Mn': F_MARK,
            'Nd': F_NUM, 'Nl': F_NUM, 'No': F_NUM,
            'Pc': F_PUNCT, 'Pd': F_PUNCT, 'Pe': F_PUNCT, 'Pf': F_PUNCT, 'Pi': F_PUNCT, 'Po': F_PUNCT, 'Ps': F_PUNCT,
            'Sc': F_SYM, 'Sk': F_SYM, 'Sm': F_SYM, 'So': F_SYM,
            'Zl': F_SEP, 'Zp': F_SEP, 'Zs': F_SEP}
ranges = []
prev = None
for cp in range(MAXCP):
    f = cat_flag[unicodedata.category(chr(cp))]
    if f != prev:
        ranges.append((cp, f)); prev = f
ws = [cp for cp in range(MAXCP) if re.match(r'\s', chr(cp))]
lower = []
for cp in range(MAXCP):
    l = chr(cp).lower()
    if len(l) == 1 and ord(l) != cp:
        lower.append((cp, ord(l)))
nfd = []  # (first, last, nfd)
for cp in range(MAXCP):
    n = unicodedata.normalize('NFD', chr(cp))
    if n[0] != chr(cp):
        v = ord(n[0])
        if nfd and nfd[-1][1] == cp - 1 and nfd[-1][2] == v:
            nfd[-1] = (nfd[-1][0], cp, v)
        else:
            nfd.append((cp, cp, v))
out = []
out.append('// Generated from Python unicodedata (Unicode %s) by gen_unicode_data.py;\n' % unicodedata.unidata_version)
out.append('// categories grouped as in llama.cpp (letter, number, mark, punctuation, symbol, control...).\n')
out.append('#include "tokenizer/unicode.h"\n\nnamespace frugal::unicode_data {\n\n')
def emit(name, typ, items, per):
    out.append('const %s %s[] = {\n' % (typ, name))
    for i in range(0, len(items), per):
        out.append('    ' + ' '.join(items[i:i+per]) + '\n')
    out.append('};\n')
    out.append('const size_t %s_size = sizeof(%s) / sizeof(%s[0]);\n\n' % (name, name, name))
emit('kFlagRanges', 'FlagRange', ['{0x%X, %d},' % r for r in ranges], 12)
emit('kWhitespace', 'uint32_t', ['0x%X,' % c for c in ws], 12)
emit('kLowercase', 'CodepointPair', ['{0x%X, 0x%X},' % p for p in lower], 10)
emit('kNfdRanges', 'NfdRange', ['{0x%X, 0x%X, 0x%X},' % r for r in nfd], 8)
out.append('}  // namespace frugal::unicode_data\n')
open(sys.argv[1], 'w').write(''.join(out))
print(len(ranges), len(ws), len(lower), len(nfd))
