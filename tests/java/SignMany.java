// Runs DCC Boxed's Sign on many files in one JVM (one JVM per document costs ~0.7 s; the RTDS has ~300).
// Usage: java -cp tool.jar SignMany.java OUTDIR [keep:]FILE...
//   writes OUTDIR/<file name> and prints "@@RESULT <file> <code>" per file.
// Sign rewrites the RequestID counter to the epoch millisecond (DCC Boxed's own behaviour); this driver waits for
// the clock to tick between files so every document gets its own, increasing counter. "keep:" passes
// --preserveCounter, so the file keeps the counter it was written with.
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.file.Files;
import java.nio.file.Path;
import uk.co.smartdcc.boxed.xmldsig.ResultCode;
import uk.co.smartdcc.boxed.xmldsig.Sign;

public class SignMany {
    public static void main(String[] args) throws Exception {
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream quiet = new PrintStream(java.io.OutputStream.nullOutputStream());
        Path outDir = Path.of(args[0]);
        long last = 0;
        for (int i = 1; i < args.length; i++) {
            boolean keep = args[i].startsWith("keep:");
            String path = keep ? args[i].substring(5) : args[i];
            while (System.currentTimeMillis() <= last) {
                Thread.onSpinWait();
            }
            last = System.currentTimeMillis();
            ByteArrayOutputStream buf = new ByteArrayOutputStream();
            System.setOut(new PrintStream(buf, true, "UTF-8"));
            System.setErr(quiet);
            ResultCode rc;
            try {
                rc = Sign.main_aux(keep ? new String[] {path, "--preserveCounter"} : new String[] {path});
            } finally {
                System.out.flush();
                System.setOut(out);
                System.setErr(err);
            }
            Files.write(outDir.resolve(Path.of(path).getFileName()), buf.toByteArray());
            out.println("@@RESULT " + path + " " + rc.name());
        }
    }
}
