package org.megatronj.io.gpt;

/**
 * Megatron's {@code normalize(weights)}: {@code w / numpy.sum(w)} in float64. The sum is NumPy's
 * pairwise summation (8 accumulators per block of up to 128, recursive halves above), because for
 * more than 7 weights it can differ from a left-to-right sum in the last bit — and these floats end
 * up in the hashed cache description.
 */
final class Normalize {
    private Normalize() {
    }

    static double[] normalize(double[] weights) {
        double sum = numpySum(weights);
        double[] out = new double[weights.length];
        for (int i = 0; i < weights.length; i++) {
            out[i] = weights[i] / sum;
        }
        return out;
    }

    /** {@code numpy.sum} of a contiguous float64 array, bit for bit. */
    static double numpySum(double[] a) {
        return pairwise(a, 0, a.length);
    }

    private static double pairwise(double[] a, int from, int n) {
        if (n < 8) {
            double res = -0.0;
            for (int i = 0; i < n; i++) {
                res += a[from + i];
            }
            return res;
        } else if (n <= 128) {
            double[] r = new double[8];
            System.arraycopy(a, from, r, 0, 8);
            int i = 8;
            for (; i < n - (n % 8); i += 8) {
                for (int k = 0; k < 8; k++) {
                    r[k] += a[from + i + k];
                }
            }
            double res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
            for (; i < n; i++) {
                res += a[from + i];
            }
            return res;
        } else {
            int n2 = n / 2;
            n2 -= n2 % 8;
            return pairwise(a, from, n2) + pairwise(a, from + n2, n - n2);
        }
    }
}
