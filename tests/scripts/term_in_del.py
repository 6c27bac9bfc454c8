"""SIGTERM arriving while a finalizer (__del__) runs: under python the process dies of it."""
import os
import signal
import time


class SignalsItselfWhenCollected:
    def __del__(self):
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.3)   # still inside __del__ when the signal is handled


obj = SignalsItselfWhenCollected()
del obj
time.sleep(5)
print("not reached")
