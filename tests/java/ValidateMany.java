// Runs DCC Boxed's Validate (schema + signature) on many files in one JVM.
// One JVM per document costs ~0.7 s; the test suite validates every templated variant.
// Usage: java -cp tool.jar ValidateMany.java FILE...   (prints "@@RESULT <file> <code>" per file)
import java.io.PrintStream;
import java.io.OutputStream;
import uk.co.smartdcc.boxed.xmldsig.ResultCode;
import uk.co.smartdcc.boxed.xmldsig.Validate;

public class ValidateMany {
    public static void main(String[] args) throws Exception {
        PrintStream out = System.out;
        PrintStream quiet = new PrintStream(OutputStream.nullOutputStream());
        for (String path : args) {
            System.setOut(quiet);
            ResultCode rc;
            try {
                rc = Validate.main_aux(new String[] {path});
            } finally {
                System.setOut(out);
            }
            out.println("@@RESULT " + path + " " + rc.name());
        }
    }
}
