# Clone the handbook into ~/src/erpgo-handbook; every later step runs from there
# page: onboarding/setup.md
# lint-only: clones over the network; the setup test links the checkout under test there instead
set -euo pipefail
mkdir -p ~/src
git clone https://github.com/erpgo/erpgo-handbook.git ~/src/erpgo-handbook
cd ~/src/erpgo-handbook
