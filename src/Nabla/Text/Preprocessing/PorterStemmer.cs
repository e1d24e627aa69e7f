namespace Nabla.Text.Preprocessing;

/// <summary>
/// The Porter stemmer: M. F. Porter, "An algorithm for suffix stripping", Program 14(3), 130–137, 1980.
/// Steps 1a–5 as the paper numbers them, with the two departures of Porter's own reference implementation
/// (whose published vocabulary and output the tests compare against): step 2 maps -bli to -ble (the paper's
/// -abli to -able) and adds -logi to -log. Like that implementation it leaves words of one or two letters alone.
/// Input is expected in lower case (a–z); other characters count as consonants.
/// </summary>
public static class PorterStemmer
{
    /// <summary>The stem of <paramref name="word"/>.</summary>
    public static string Stem(string word)
    {
        ArgumentNullException.ThrowIfNull(word);
        if (word.Length <= 2) return word;
        var w = new Word(word);
        w.Step1a();
        w.Step1b();
        w.Step1c();
        w.Step2();
        w.Step3();
        w.Step4();
        w.Step5a();
        w.Step5b();
        return w.ToString();
    }

    /// <summary>The word being stemmed: its letters up to <see cref="end"/> (exclusive); the paper's measure m
    /// and conditions are asked of the stem before a candidate suffix, which ends at <see cref="stemEnd"/>.</summary>
    private sealed class Word(string word)
    {
        private readonly char[] letters = word.ToCharArray();
        private int end = word.Length;
        private int stemEnd;

        public override string ToString() => new(letters, 0, end);

        /// <summary>A consonant is a letter other than a, e, i, o, u, and other than y preceded by a consonant.</summary>
        private bool IsConsonant(int i) => letters[i] switch
        {
            'a' or 'e' or 'i' or 'o' or 'u' => false,
            'y' => i == 0 || !IsConsonant(i - 1),
            _ => true,
        };

        /// <summary>m in [C](VC)^m[V]: the number of vowel–consonant sequences in the stem.</summary>
        private int Measure()
        {
            int m = 0, i = 0;
            while (i < stemEnd && IsConsonant(i)) i++;
            while (i < stemEnd)
            {
                while (i < stemEnd && !IsConsonant(i)) i++;
                if (i >= stemEnd) break;
                while (i < stemEnd && IsConsonant(i)) i++;
                m++;
            }
            return m;
        }

        /// <summary>*v*: the stem contains a vowel.</summary>
        private bool StemHasVowel()
        {
            for (int i = 0; i < stemEnd; i++) if (!IsConsonant(i)) return true;
            return false;
        }

        /// <summary>*d: the letters ending at <paramref name="i"/> are a double consonant.</summary>
        private bool DoubleConsonant(int i) => i >= 1 && letters[i] == letters[i - 1] && IsConsonant(i);

        /// <summary>*o: the letters ending at <paramref name="i"/> are consonant–vowel–consonant, the last not w, x or y.</summary>
        private bool ConsonantVowelConsonant(int i) =>
            i >= 2 && IsConsonant(i) && !IsConsonant(i - 1) && IsConsonant(i - 2) && letters[i] is not ('w' or 'x' or 'y');

        /// <summary>Whether the word ends with <paramref name="suffix"/>; if so the stem is what precedes it.</summary>
        private bool EndsWith(string suffix)
        {
            if (suffix.Length > end) return false;
            for (int i = 0; i < suffix.Length; i++)
                if (letters[end - suffix.Length + i] != suffix[i]) return false;
            stemEnd = end - suffix.Length;
            return true;
        }

        /// <summary>Replaces the suffix after the stem with <paramref name="replacement"/>.</summary>
        private void SetSuffix(string replacement)
        {
            replacement.CopyTo(0, letters, stemEnd, replacement.Length);
            end = stemEnd + replacement.Length;
        }

        /// <summary>(m &gt; 0) suffix → replacement, for the suffix <see cref="EndsWith"/> just matched.</summary>
        private void ReplaceIfMeasurePositive(string replacement)
        {
            if (Measure() > 0) SetSuffix(replacement);
        }

        /// <summary>SSES → SS, IES → I, SS → SS, S → (nothing).</summary>
        public void Step1a()
        {
            if (letters[end - 1] != 's') return;
            if (EndsWith("sses") || EndsWith("ies")) end -= 2;
            else if (letters[end - 2] != 's') end--;
        }

        /// <summary>(m &gt; 0) EED → EE; (*v*) ED → ; (*v*) ING → ; then AT → ATE, BL → BLE, IZ → IZE, undoubling, (m = 1 and *o) → E.</summary>
        public void Step1b()
        {
            if (EndsWith("eed"))
            {
                if (Measure() > 0) end--;
                return;
            }
            if (!((EndsWith("ed") || EndsWith("ing")) && StemHasVowel())) return;
            end = stemEnd;
            if (EndsWith("at")) SetSuffix("ate");
            else if (EndsWith("bl")) SetSuffix("ble");
            else if (EndsWith("iz")) SetSuffix("ize");
            else if (DoubleConsonant(end - 1))
            {
                if (letters[end - 1] is not ('l' or 's' or 'z')) end--;
            }
            else
            {
                stemEnd = end;
                if (Measure() == 1 && ConsonantVowelConsonant(end - 1)) SetSuffix("e");
            }
        }

        /// <summary>(*v*) Y → I.</summary>
        public void Step1c()
        {
            if (EndsWith("y") && StemHasVowel()) letters[end - 1] = 'i';
        }

        private static readonly (string Suffix, string Replacement)[] Step2Rules =
        [
            ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"), ("bli", "ble"),
            ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"), ("ation", "ate"),
            ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"),
            ("iviti", "ive"), ("biliti", "ble"), ("logi", "log"),
        ];

        private static readonly (string Suffix, string Replacement)[] Step3Rules =
        [
            ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""), ("ness", ""),
        ];

        /// <summary>The first rule whose suffix the word ends with decides; it applies when m &gt; 0. No two suffixes
        /// of a step end one another except where the paper lists the longer first (ational/tional, ization/ation).</summary>
        private void ApplyFirstMatch((string Suffix, string Replacement)[] rules)
        {
            foreach (var (suffix, replacement) in rules)
                if (EndsWith(suffix))
                {
                    ReplaceIfMeasurePositive(replacement);
                    return;
                }
        }

        public void Step2() => ApplyFirstMatch(Step2Rules);

        public void Step3() => ApplyFirstMatch(Step3Rules);

        private static readonly string[] Step4Suffixes =
            ["al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism", "ate", "iti", "ous", "ive", "ize"];

        /// <summary>(m &gt; 1) removes one of the residual suffixes; -ion only after s or t. As in Porter's implementation
        /// the longest suffix that matches is the candidate (ement before ment before ent), and if it fails m &gt; 1
        /// no shorter one is tried.</summary>
        public void Step4()
        {
            foreach (var suffix in Step4Suffixes)
            {
                if (!EndsWith(suffix)) continue;
                if (suffix == "ion" && !(stemEnd > 0 && letters[stemEnd - 1] is 's' or 't')) continue;
                if (Measure() > 1) end = stemEnd;
                return;
            }
        }

        /// <summary>(m &gt; 1) E → ; (m = 1 and not *o) E → .</summary>
        public void Step5a()
        {
            if (letters[end - 1] != 'e') return;
            stemEnd = end - 1;
            int m = Measure();
            if (m > 1 || (m == 1 && !ConsonantVowelConsonant(end - 2))) end--;
        }

        /// <summary>(m &gt; 1 and *d and *L) → single letter.</summary>
        public void Step5b()
        {
            stemEnd = end;
            if (letters[end - 1] == 'l' && DoubleConsonant(end - 1) && Measure() > 1) end--;
        }
    }
}
