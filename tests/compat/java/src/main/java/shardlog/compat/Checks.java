package shardlog.compat;

import java.util.concurrent.ExecutionException;

/**
 * Named checks that print {@code PASS PREFIX.NAME} or {@code FAIL PREFIX.NAME: why} (the
 * compat suite's runner counts those lines), and a count of each.
 */
class Checks {
    final String prefix;
    int passed;
    int failed;

    Checks(String prefix) {
        this.prefix = prefix;
    }

    interface Check {
        void run() throws Exception;
    }

    void check(String name, Check c) {
        try {
            c.run();
            passed++;
            System.out.println("PASS " + prefix + "." + name);
        } catch (Throwable t) {
            failed++;
            Throwable root = t;
            if (root instanceof ExecutionException && root.getCause() != null) {
                root = root.getCause();
            }
            String msg = root.getClass().getName() + ": " + root.getMessage();
            if (root.getCause() != null && root.getCause() != root) {
                msg += " (caused by " + root.getCause() + ")";
            }
            System.out.println("FAIL " + prefix + "." + name + ": " + msg.replace('\n', ' '));
        }
        System.out.flush();
    }

    static void require(boolean ok, String fmt, Object... args) {
        if (!ok) {
            throw new AssertionError(String.format(fmt, args));
        }
    }
}
