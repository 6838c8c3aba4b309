// Command example-rotator runs the example rotator (and, with
// -fake-provider, the fake provider it rotates keys at) on loopback:
//
//	ROTATOR_SECRET=whsec_… example-rotator -listen 127.0.0.1:9100 -fake-provider 127.0.0.1:9101
//
// Register it first (POST /api/v1/rotators {"url": "http://127.0.0.1:9100"})
// and give it the secret credgate answers.
package main

import (
	"flag"
	"log"
	"net/http"
	"os"
	"time"

	"github.com/credgate/credgate/examples/rotator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:9100", "where the rotator listens")
	provider := flag.String("provider", "", "the provider's base URL")
	fake := flag.String("fake-provider", "", "run the fake provider here, and rotate its keys")
	flag.Parse()
	if *fake != "" {
		p := rotator.NewProvider()
		go func() {
			log.Fatal((&http.Server{Addr: *fake, Handler: p, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
		}()
		*provider = "http://" + *fake
	}
	if *provider == "" {
		log.Fatal("name the provider (-provider) or run the fake one (-fake-provider)")
	}
	r := rotator.New(*provider)
	if err := r.SetSecret(os.Getenv("ROTATOR_SECRET")); err != nil {
		log.Fatal("ROTATOR_SECRET must be the secret credgate showed when the rotator was registered: ", err)
	}
	log.Printf("rotator on %s, provider %s", *listen, *provider)
	log.Fatal((&http.Server{Addr: *listen, Handler: r, ReadHeaderTimeout: 5 * time.Second}).ListenAndServe())
}
