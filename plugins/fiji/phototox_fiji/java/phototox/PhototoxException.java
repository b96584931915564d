package phototox;

/** An error meant for the person running the macro. */
public class PhototoxException extends Exception {
    public PhototoxException(String message) {
        super(message);
    }
}
