// A Java client with the JDK's default TLS settings (as HttpsURLConnection uses them):
// an SSLSocket layered over a socket to ADDR, with NAME as the peer host (so SNI is
// sent) and certificate checks off. Prints what it negotiated; exit 1 on failure.
//
//   java -cp DIR TlsClient ADDR PORT NAME

import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.security.cert.X509Certificate;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLSession;
import javax.net.ssl.SSLSocket;
import javax.net.ssl.TrustManager;
import javax.net.ssl.X509TrustManager;

public class TlsClient {
    public static void main(String[] args) throws Exception {
        String addr = args[0];
        int port = Integer.parseInt(args[1]);
        String name = args[2];
        TrustManager[] trustAll = {new X509TrustManager() {
            public void checkClientTrusted(X509Certificate[] c, String a) {}
            public void checkServerTrusted(X509Certificate[] c, String a) {}
            public X509Certificate[] getAcceptedIssuers() { return new X509Certificate[0]; }
        }};
        SSLContext ctx = SSLContext.getInstance("TLS");
        ctx.init(null, trustAll, null);
        try (Socket raw = new Socket()) {
            raw.connect(new InetSocketAddress(addr, port), 10000);
            raw.setSoTimeout(10000);
            SSLSocket s = (SSLSocket) ctx.getSocketFactory().createSocket(raw, name, port, true);
            s.startHandshake();
            SSLSession session = s.getSession();
            OutputStream out = s.getOutputStream();
            out.write(("GET / HTTP/1.1\r\nHost: " + name + "\r\nConnection: close\r\n\r\n")
                    .getBytes(StandardCharsets.US_ASCII));
            out.flush();
            InputStream in = s.getInputStream();
            byte[] buf = new byte[4096];
            try {
                while (in.read(buf) >= 0) { }
            } catch (java.io.IOException ignored) { }
            String protocol = session.getProtocol();
            if (protocol.equals("TLSv1")) {
                protocol = "TLSv1.0";
            }
            System.out.println("negotiated " + protocol + " " + session.getCipherSuite());
        } catch (Exception e) {
            System.out.println("error: " + e);
            System.exit(1);
        }
    }
}
