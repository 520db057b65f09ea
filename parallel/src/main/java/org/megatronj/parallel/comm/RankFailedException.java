package org.megatronj.parallel.comm;

/** The first failure of a rank of a {@link LocalWorld}, naming the rank and its (tp, pp, dp) position. */
public final class RankFailedException extends RuntimeException {
    private final int rank;

    public RankFailedException(int rank, String message, Throwable cause) {
        super(message, cause);
        this.rank = rank;
    }

    /** Global rank of the rank that failed first. */
    public int rank() {
        return rank;
    }
}
